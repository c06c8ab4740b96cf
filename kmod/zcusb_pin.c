// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: pinning user pages and charging them to the opener.
 *
 * Every pinned page is charged to the opener that pinned it, bounded by
 * the module parameter max_pinned_mb; kernel memory an opener makes the
 * module hold (bounce buffers, URBs, SG tables) is charged likewise against
 * max_bounce_mb. Both charges are taken before the memory and given back
 * by the path that frees it, so release() ends with both at zero.
 */
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "zcusb.h"

/* pin in steps, so a large range can be interrupted by a fatal signal */
#define ZCUSB_PIN_STEP	512

static unsigned long zcusb_pin_limit(void)
{
	return (unsigned long)READ_ONCE(zcusb_max_pinned_mb) << (20 - PAGE_SHIFT);
}

int zcusb_pin(struct zcusb_opener *c, unsigned long addr, unsigned long npages,
	      unsigned int gup_flags, struct page ***pagesp)
{
	unsigned long limit = zcusb_pin_limit();
	unsigned long done = 0;
	struct page **pages;
	int ret;

	if (!npages)
		return -EINVAL;
	if (npages > limit || c->pinned_pages > limit - npages)
		return -ENOMEM;

	pages = kvmalloc_array(npages, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;

	while (done < npages) {
		int n = min_t(unsigned long, npages - done, ZCUSB_PIN_STEP);

		ret = pin_user_pages_fast(addr + done * PAGE_SIZE, n, gup_flags,
					  pages + done);
		if (ret <= 0) {
			if (!ret)
				ret = -EFAULT;
			goto fail;
		}
		done += ret;
		if (done < npages && fatal_signal_pending(current)) {
			ret = -EINTR;
			goto fail;
		}
	}

	c->pinned_pages += npages;
	atomic64_add(npages, &zcusb_stats.pinned_pages);
	*pagesp = pages;
	return 0;

fail:
	if (done)
		unpin_user_pages(pages, done);
	kvfree(pages);
	return ret;
}

void zcusb_unpin(struct zcusb_opener *c, struct page **pages,
		 unsigned long npages, bool dirty)
{
	unpin_user_pages_dirty_lock(pages, npages, dirty);
	kvfree(pages);
	c->pinned_pages -= npages;
	atomic64_sub(npages, &zcusb_stats.pinned_pages);
}

int zcusb_register(struct zcusb_opener *c, struct zcusb_register *reg)
{
	struct zcusb_region *r;
	u32 id;
	int ret;

	if (reg->reserved)
		return -EINVAL;
	if (!reg->length || !PAGE_ALIGNED(reg->addr) ||
	    !PAGE_ALIGNED(reg->length))
		return -EINVAL;
	/* overflow-safe: the limit check bounds length before any sum */
	if (reg->length >> PAGE_SHIFT > zcusb_pin_limit())
		return -ENOMEM;
	if (reg->addr + reg->length < reg->addr ||
	    !access_ok(u64_to_user_ptr(reg->addr), reg->length))
		return -EFAULT;

	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	r->addr = reg->addr;
	r->length = reg->length;
	r->npages = reg->length >> PAGE_SHIFT;

	/* the range serves IN and OUT alike: it must be writable */
	ret = zcusb_pin(c, reg->addr, r->npages, FOLL_WRITE | FOLL_LONGTERM,
			&r->pages);
	if (ret)
		goto free;

	ret = xa_alloc(&c->regions, &id, r, XA_LIMIT(1, ZCUSB_MAX_REGIONS),
		       GFP_KERNEL);
	if (ret) {
		if (ret == -EBUSY)
			ret = -ENOSPC;
		goto unpin;
	}
	r->id = id;
	reg->buffer_id = id;
	return 0;

unpin:
	zcusb_unpin(c, r->pages, r->npages, false);
free:
	kfree(r);
	return ret;
}

static void zcusb_region_free(struct zcusb_opener *c, struct zcusb_region *r)
{
	/* devices may have written into the pages: always mark them dirty */
	zcusb_unpin(c, r->pages, r->npages, true);
	kfree(r);
}

/*
 * A range in use stays (-EBUSY), unless an in-kernel queue may use it
 * (it has a client id): zcusbd cannot know when the module's queues are
 * done with it, so it leaves now and is freed by its last transfer.
 */
int zcusb_unregister(struct zcusb_opener *c, u32 id)
{
	struct zcusb_region *r = xa_load(&c->regions, id);

	if (!id || !r)
		return -ENOENT;
	if (r->users && !r->client_id)
		return -EBUSY;
	xa_erase(&c->regions, id);
	if (r->client_id)
		xa_erase(&c->aliases, r->client_id);
	r->client_id = 0;
	if (r->users) {
		r->orphan = true;
		return 0;
	}
	zcusb_region_free(c, r);
	return 0;
}

/* A transfer over @r ended (zi->lock held). */
void zcusb_region_put(struct zcusb_opener *c, struct zcusb_region *r)
{
	if (!--r->users && r->orphan)
		zcusb_region_free(c, r);
}

/* Name a registered range by the id a client's ring entries use. */
int zcusb_buffer_alias(struct zcusb_opener *c,
		       const struct zcusb_buffer_alias *a)
{
	struct zcusb_region *r = xa_load(&c->regions, a->buffer_id);
	int ret;

	if (!a->buffer_id || !r)
		return -ENOENT;
	if (r->client_id == a->client_id)
		return 0;
	if (a->client_id) {
		ret = xa_insert(&c->aliases, a->client_id, r, GFP_KERNEL);
		if (ret)
			return ret;	/* -EBUSY: the id names another range */
	}
	if (r->client_id)
		xa_erase(&c->aliases, r->client_id);
	r->client_id = a->client_id;
	return 0;
}

/* release(): every transfer is freed already, so no region is in use. */
void zcusb_unregister_all(struct zcusb_opener *c)
{
	struct zcusb_region *r;
	unsigned long id;

	xa_for_each(&c->regions, id, r) {
		WARN_ON(r->users);
		xa_erase(&c->regions, id);
		zcusb_region_free(c, r);
	}
	xa_destroy(&c->regions);
	xa_destroy(&c->aliases);
}

int zcusb_kmem_charge(struct zcusb_opener *c, size_t bytes)
{
	size_t limit = (size_t)READ_ONCE(zcusb_max_bounce_mb) << 20;

	if (bytes > limit || c->kmem > limit - bytes)
		return -ENOMEM;
	c->kmem += bytes;
	return 0;
}

void zcusb_kmem_uncharge(struct zcusb_opener *c, size_t bytes)
{
	WARN_ON(bytes > c->kmem);
	c->kmem -= bytes;
}
