// SPDX-License-Identifier: GPL-2.0
/*
 * In-kernel queues: the shared control-request and iso vectors through the
 * module's checks (the "selftest" attribute), then a queue attached on the
 * Loopback fd and driven as a client drives it: data moved both ways
 * through the ring, refused entries, CANCEL, a timeout, a hostile sq_tail
 * (BROKEN), the queue's counters (QUEUE_STATS, live and the final ones
 * DETACH writes), DETACH handing back the indices and close marking the
 * ring DEAD with -ESHUTDOWN; nothing stays pinned. Then the doorbell: its
 * pass runs in the writer's own write(2), the doorbell stays on, and a
 * doorbell and the close of the device file in one io_uring submission
 * (both leave task works on one task) neither hang nor leak.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "zcusb-kmod-test.h"
#include "../../include/zcusb/zcusb-ring.h"

/* as daemon/ring.c lays a ring out */
int tq_open(struct tq *q, int fd, uint32_t entries)
{
	size_t sq = entries * sizeof(struct zcusb_sqe);
	uint32_t cq_off = PAGE + (uint32_t)((sq + PAGE - 1) / PAGE * PAGE);
	struct zcusb_queue_attach a = { .sq_entries = entries };

	memset(q, 0, sizeof(*q));
	q->entries = entries;
	q->size = (cq_off + entries * 2 * sizeof(struct zcusb_cqe) + PAGE - 1) / PAGE * PAGE;
	q->ring_fd = memfd_create("zcusb-test-ring", MFD_CLOEXEC);
	if (q->ring_fd < 0 || ftruncate(q->ring_fd, q->size) < 0)
		return -errno;
	q->map = mmap(NULL, q->size, PROT_READ | PROT_WRITE, MAP_SHARED, q->ring_fd, 0);
	if (q->map == MAP_FAILED)
		return -errno;
	q->h = (void *)q->map;
	*q->h = (struct zcusb_ring_header){
		.magic = ZCUSB_RING_MAGIC, .version = ZCUSB_RING_VERSION,
		.header_size = sizeof(*q->h), .sq_entries = entries,
		.cq_entries = entries * 2, .sqe_size = sizeof(struct zcusb_sqe),
		.cqe_size = sizeof(struct zcusb_cqe), .sq_offset = PAGE,
		.cq_offset = cq_off, .ring_size = (uint32_t)q->size,
	};
	q->sq = (void *)(q->map + PAGE);
	q->cq = (void *)(q->map + cq_off);
	q->submit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->complete_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a.ring_fd = q->ring_fd;
	a.submit_fd = q->submit_fd;
	a.complete_fd = q->complete_fd;
	if (ioctl(fd, ZCUSB_IOC_QUEUE_ATTACH, &a) < 0)
		return -errno;
	q->id = a.queue_id;
	return 0;
}

void tq_close(struct tq *q)
{
	munmap(q->map, q->size);
	close(q->ring_fd);
	close(q->submit_fd);
	close(q->complete_fd);
}

void tq_push(struct tq *q, const struct zcusb_sqe *e)
{
	q->sq[q->tail & (q->entries - 1)] = *e;
	__atomic_store_n(&q->h->sq_tail.value, ++q->tail, __ATOMIC_RELEASE);
}

void tq_ring(struct tq *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&q->h->sq_flags.value, __ATOMIC_ACQUIRE) & ZCUSB_SQ_NEED_WAKEUP)
		eventfd_write(q->submit_fd, 1);
}

/* Wait for one completion (timeout_ms); 0 or -ETIMEDOUT. */
int tq_reap(struct tq *q, struct zcusb_cqe *out, int timeout_ms)
{
	double end = now() + timeout_ms / 1000.0;

	for (;;) {
		uint32_t tail = __atomic_load_n(&q->h->cq_tail.value, __ATOMIC_ACQUIRE);
		struct pollfd p = { .fd = q->complete_fd, .events = POLLIN };
		eventfd_t v;

		if (tail != q->head) {
			*out = q->cq[q->head & (q->entries * 2 - 1)];
			__atomic_store_n(&q->h->cq_head.value, ++q->head, __ATOMIC_RELEASE);
			return 0;
		}
		if (now() > end)
			return -ETIMEDOUT;
		if (poll(&p, 1, 20) > 0)
			eventfd_read(q->complete_fd, &v);
	}
}

static int queue_stats(int fd, uint32_t id, struct zcusb_queue_stats *st)
{
	*st = (struct zcusb_queue_stats){ .queue_id = id };
	return ioctl(fd, ZCUSB_IOC_QUEUE_STATS, st) < 0 ? -errno : 0;
}

/* submitted, completed, failed, bytes in, bytes out, in flight as expected */
static int stats_are(const struct zcusb_queue_stats *st, uint64_t sub, uint64_t ok,
		     uint64_t failed, uint64_t in, uint64_t out, uint64_t in_flight)
{
	return st->submitted == sub && st->completed == ok && st->failed == failed &&
	       st->bytes_in == in && st->bytes_out == out && st->in_flight == in_flight &&
	       !st->reserved && !st->reserved2[0] && !st->reserved2[1];
}

#define STATS_FMT "submitted %llu completed %llu failed %llu in %llu out %llu in flight %llu"
#define STATS_ARGS(st) (unsigned long long)(st).submitted, (unsigned long long)(st).completed, \
	(unsigned long long)(st).failed, (unsigned long long)(st).bytes_in, \
	(unsigned long long)(st).bytes_out, (unsigned long long)(st).in_flight

static struct zcusb_sqe bulk(uint8_t ep, uint32_t bid, uint64_t off, uint32_t len, uint64_t ud)
{
	return (struct zcusb_sqe){ .opcode = ZCUSB_OP_BULK, .endpoint = ep, .buffer_id = bid,
				   .offset = off, .length = len, .user_data = ud };
}

void test_queue(struct dev *d)
{
	struct zcusb_buffer_alias al = { .buffer_id = region_id, .client_id = 7 };
	struct zcusb_queue_detach det = { 0 };
	struct zcusb_queue_stats st, fin;
	struct zcusb_cqe c;
	struct zcusb_sqe e;
	struct stats s0, s;
	char buf[8192];
	struct tq q;
	size_t n = 256 * 1024, i;
	int ret, ok;

	section = "queue";
	ret = read_file(DRV "/selftest", buf, sizeof(buf));
	CHECK(ret == 0 && strstr(buf, " fail 0") && !strstr(buf, "FAIL") && strstr(buf, "iso vectors ") &&
	      strstr(strstr(buf, "iso vectors "), " fail 0"),
	      "shared control and iso vectors through the module: %s", ret ? strerror(-ret) : buf);

	stats(&s0);
	ret = ioctl(d->fd, ZCUSB_IOC_BUFFER_ALIAS, &al);
	CHECK(ret == 0, "BUFFER_ALIAS region %u as client id 7: %s", region_id, ret ? strerror(errno) : "ok");
	ret = tq_open(&q, d->fd, 8);
	CHECK(ret == 0 && q.id > 0, "QUEUE_ATTACH -> queue %u: %s", q.id, ret ? strerror(-ret) : "ok");
	if (ret)
		return;

	/* OUT then IN through the ring: the Loopback echoes */
	for (i = 0; i < n; i++)
		region[i] = rnd8();
	memset(region + IN_AREA, 0, n);
	for (size_t done = 0; done < n; done += LOOP_BUFLEN) {
		e = bulk(d->ep_out, 7, done, LOOP_BUFLEN, 1);
		tq_push(&q, &e);
		e = bulk(d->ep_in, 7, IN_AREA + done, LOOP_BUFLEN, 2);
		tq_push(&q, &e);
		tq_ring(&q);
		ok = tq_reap(&q, &c, 5000) == 0 && c.user_data == 1 && c.status == 0 &&
		     c.actual_length == LOOP_BUFLEN;
		ok = ok && tq_reap(&q, &c, 5000) == 0 && c.user_data == 2 && c.status == 0 &&
		     c.actual_length == LOOP_BUFLEN;
		if (!ok)
			break;
	}
	CHECK(ok && !memcmp(region, region + IN_AREA, n),
	      "%zu KiB OUT and back IN through the ring, byte for byte (last: %d/%u)", n / 1024,
	      c.status, c.actual_length);

	/* refused entries complete with the errors zcusbd gives */
	e = bulk(d->ep_out, 99, 0, 512, 3);
	tq_push(&q, &e);
	e = bulk(0x8f, 7, 0, 512, 4);
	tq_push(&q, &e);
	e = bulk(d->ep_out, 7, REGION_LEN - 256, 512, 5);
	tq_push(&q, &e);
	e = (struct zcusb_sqe){ .opcode = 77, .user_data = 6 };
	tq_push(&q, &e);
	e = (struct zcusb_sqe){ .opcode = ZCUSB_OP_CONTROL, .buffer_id = 7, .length = 8, .user_data = 8 };
	memcpy(region, "\x00\x09\x01\x00\x00\x00\x00\x00", 8); /* SET_CONFIGURATION(1) */
	tq_push(&q, &e);
	tq_ring(&q);
	{
		int want[] = { -ENOENT, -EINVAL, -EFAULT, -EINVAL, -EPERM }, got[5] = { 1, 1, 1, 1, 1 };

		ok = 1;
		for (i = 0; i < 5; i++)
			ok = ok && tq_reap(&q, &c, 3000) == 0 && (got[i] = c.status) == want[i];
		CHECK(ok, "refused: unknown buffer %d, foreign endpoint %d, beyond the buffer %d, "
		      "bad opcode %d, SET_CONFIGURATION %d", got[0], got[1], got[2], got[3], got[4]);
	}

	/* an IN nothing answers: CANCEL ends it; another one times out */
	e = bulk(d->ep_in, 7, IN_AREA, 512, 10);
	tq_push(&q, &e);
	e = (struct zcusb_sqe){ .opcode = ZCUSB_OP_CANCEL, .user_data = 11, .cancel_user_data = 10 };
	tq_push(&q, &e);
	tq_ring(&q);
	{
		int st[2] = { 1, 1 };
		uint64_t ud[2] = { 0, 0 };

		for (i = 0; i < 2 && tq_reap(&q, &c, 3000) == 0; i++) {
			ud[i] = c.user_data;
			st[i] = c.status;
		}
		CHECK(i == 2 && ((ud[0] == 11 && st[0] == 0 && ud[1] == 10 && st[1] == -ECANCELED) ||
				 (ud[1] == 11 && st[1] == 0 && ud[0] == 10 && st[0] == -ECANCELED)),
		      "CANCEL of a pending IN: %llu:%d %llu:%d", (unsigned long long)ud[0], st[0],
		      (unsigned long long)ud[1], st[1]);
	}
	e = bulk(d->ep_in, 7, IN_AREA, 512, 12);
	e.timeout_ms = 200;
	tq_push(&q, &e);
	tq_ring(&q);
	{
		double t = now();

		ret = tq_reap(&q, &c, 3000);
		CHECK(ret == 0 && c.user_data == 12 && c.status == -ETIMEDOUT && now() - t < 2.0,
		      "timeout_ms 200 -> %d after %.2f s", c.status, now() - t);
	}

	/* QUEUE_STATS: a queue id the file does not have, reserved fields set */
	ret = queue_stats(d->fd, q.id + 100, &st);
	CHECK(ret == -ENOENT, "QUEUE_STATS of queue %u (none) -> %s", q.id + 100, strerror(-ret));
	ret = queue_stats(d->fd, 0, &st);
	CHECK(ret == -ENOENT, "QUEUE_STATS of queue 0 -> %s", strerror(-ret));
	st = (struct zcusb_queue_stats){ .queue_id = q.id, .reserved2[1] = 1 };
	ret = ioctl(d->fd, ZCUSB_IOC_QUEUE_STATS, &st) < 0 ? -errno : 0;
	CHECK(ret == -EINVAL, "QUEUE_STATS with a reserved field set -> %s", strerror(-ret));

	/* DETACH hands the indices back; the ring is zcusbd's again */
	e = bulk(d->ep_in, 7, IN_AREA, 512, 13);
	tq_push(&q, &e);
	tq_ring(&q);
	usleep(100 * 1000);
	{
		/* as zcusbd counts: the loop's 2 x k transfers and CANCEL 11
		 * completed; 5 refused, 10 cancelled, 12 timed out failed; 13
		 * in flight (and failed by the detach) */
		uint64_t k = n / LOOP_BUFLEN, sub = 2 * k + 5 + 2 + 1 + 1;

		ret = queue_stats(d->fd, q.id, &st);
		CHECK(ret == 0 && st.queue_id == q.id && stats_are(&st, sub, 2 * k + 1, 7, n, n, 1),
		      "QUEUE_STATS live: " STATS_FMT " (%s)", STATS_ARGS(st), strerror(-ret));
		det.queue_id = q.id;
		det.end_status = -EACCES;
		det.stats_addr = (uintptr_t)&fin;
		memset(&fin, 0xff, sizeof(fin));
		ret = ioctl(d->fd, ZCUSB_IOC_QUEUE_DETACH, &det);
		CHECK(ret == 0 && det.sq_head == q.tail && det.cq_tail == q.head + 1,
		      "QUEUE_DETACH: sq_head %u (tail %u), cq_tail %u (head %u)", det.sq_head, q.tail,
		      det.cq_tail, q.head);
		CHECK(ret == 0 && fin.queue_id == q.id && stats_are(&fin, sub, 2 * k + 1, 8, n, n, 0),
		      "QUEUE_DETACH's final counters: " STATS_FMT, STATS_ARGS(fin));
	}
	ret = tq_reap(&q, &c, 1000);
	CHECK(ret == 0 && c.user_data == 13 && c.status == -EACCES,
	      "the pending IN completed with the detach status: %d", c.status);
	det.stats_addr = 0;
	ret = ioctl(d->fd, ZCUSB_IOC_QUEUE_DETACH, &det);
	CHECK(ret < 0 && errno == ENOENT, "second DETACH -> %s", strerror(errno));
	ret = queue_stats(d->fd, q.id, &st);
	CHECK(ret == -ENOENT, "QUEUE_STATS of the detached queue -> %s", strerror(-ret));
	tq_close(&q);

	/* hostile indices: BROKEN, the module stops serving it */
	ret = tq_open(&q, d->fd, 8);
	CHECK(ret == 0, "second queue attached: %s", ret ? strerror(-ret) : "ok");
	if (ret)
		return;
	__atomic_store_n(&q.h->sq_tail.value, 1000, __ATOMIC_RELEASE);
	eventfd_write(q.submit_fd, 1);
	usleep(200 * 1000);
	CHECK(q.h->sq_flags.value & ZCUSB_SQ_BROKEN, "sq_tail 1000 on an 8-entry ring: flags %#x",
	      q.h->sq_flags.value);
	for (i = 0; i < 10000; i++)
		eventfd_write(q.submit_fd, 1); /* a doorbell storm costs nothing */
	CHECK(1, "10000 doorbells on a broken ring");
	tq_close(&q); /* the client is gone; the module keeps its own references */

	/* close: every queue ends -ESHUTDOWN, DEAD */
	ret = tq_open(&q, d->fd, 4);
	e = bulk(d->ep_in, 7, IN_AREA, 512, 20);
	tq_push(&q, &e);
	tq_ring(&q);
	usleep(100 * 1000);
	stats(&s);
	CHECK(ret == 0 && s.pinned > s0.pinned, "third queue, one IN pending; pinned %lld", s.pinned);
	dev_close(d);
	ret = tq_reap(&q, &c, 1000);
	CHECK(ret == 0 && c.user_data == 20 && c.status == -ESHUTDOWN &&
	      (q.h->sq_flags.value & ZCUSB_SQ_DEAD) && q.h->end_status == -ESHUTDOWN,
	      "close of the device fd: IN -> %d, flags %#x, end_status %d", c.status,
	      q.h->sq_flags.value, q.h->end_status);
	tq_close(&q);
	stats(&s);
	/* what is left is the SourceSink fd's registration of the region */
	CHECK(s.pinned == REGION_LEN / PAGE, "pinned_pages %lld after close (the SourceSink fd's %u)",
	      s.pinned, REGION_LEN / PAGE);
	ret = read_file(DRV "/stats", buf, sizeof(buf));
	CHECK(ret == 0 && strstr(buf, "kqueues 0\n") && strstr(buf, "kq_in_flight 0\n"),
	      "no queue, nothing in flight");
	dev_open(d);
}

/* Just enough io_uring for one submission of two entries (no liburing). */
struct uring {
	int fd;
	void *sq_map, *cq_map;
	size_t sq_len, cq_len;
	struct io_uring_sqe *sqes;
	uint32_t *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_cqe *cqes;
};

static int uring_open(struct uring *u)
{
	struct io_uring_params p = { 0 };

	u->fd = syscall(__NR_io_uring_setup, 4, &p);
	if (u->fd < 0)
		return -errno;
	u->sq_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
	u->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	u->sq_map = mmap(NULL, u->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
			 IORING_OFF_SQ_RING);
	u->cq_map = mmap(NULL, u->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
			 IORING_OFF_CQ_RING);
	u->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQES);
	if (u->sq_map == MAP_FAILED || u->cq_map == MAP_FAILED || u->sqes == MAP_FAILED)
		return -errno;
	u->sq_tail = (uint32_t *)((char *)u->sq_map + p.sq_off.tail);
	u->sq_mask = (uint32_t *)((char *)u->sq_map + p.sq_off.ring_mask);
	u->sq_array = (uint32_t *)((char *)u->sq_map + p.sq_off.array);
	u->cq_head = (uint32_t *)((char *)u->cq_map + p.cq_off.head);
	u->cq_tail = (uint32_t *)((char *)u->cq_map + p.cq_off.tail);
	u->cq_mask = (uint32_t *)((char *)u->cq_map + p.cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)((char *)u->cq_map + p.cq_off.cqes);
	return 0;
}

static void uring_push(struct uring *u, const struct io_uring_sqe *e)
{
	uint32_t tail = *u->sq_tail, i = tail & *u->sq_mask;

	u->sqes[i] = *e;
	u->sq_array[i] = i;
	__atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

/* Reap up to @n completions within @timeout_ms; returns how many. */
static int uring_reap(struct uring *u, int *res, int n, int timeout_ms)
{
	double end = now() + timeout_ms / 1000.0;
	int got = 0;

	while (got < n && now() < end) {
		uint32_t head = *u->cq_head;

		if (head == __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE)) {
			struct pollfd p = { .fd = u->fd, .events = POLLIN };

			poll(&p, 1, 20);
			continue;
		}
		res[u->cqes[head & *u->cq_mask].user_data] = u->cqes[head & *u->cq_mask].res;
		__atomic_store_n(u->cq_head, head + 1, __ATOMIC_RELEASE);
		got++;
	}
	return got;
}

static void uring_close(struct uring *u)
{
	munmap(u->sq_map, u->sq_len);
	munmap(u->cq_map, u->cq_len);
	close(u->fd);
}

static long module_refcnt(void)
{
	char buf[32];

	return read_file("/sys/module/zcusb/refcnt", buf, sizeof(buf)) ? -1 : atol(buf);
}

void test_queue_doorbell(struct dev *d)
{
	struct zcusb_buffer_alias al = { .client_id = 9 };
	struct zcusb_cqe c;
	struct zcusb_sqe e;
	struct uring u;
	struct tq q;
	uint64_t one = 1;
	unsigned int served = 0, rung = 0, i;
	int ret, res[2] = { 1, 1 };
	long refs;

	section = "doorbell";
	ret = do_register(d->fd, region, REGION_LEN, &al.buffer_id);
	ret = ret ?: (ioctl(d->fd, ZCUSB_IOC_BUFFER_ALIAS, &al) < 0 ? -errno : 0);
	ret = ret ?: tq_open(&q, d->fd, 8);
	CHECK(ret == 0, "region registered, aliased, queue attached: %s", ret ? strerror(-ret) : "ok");
	if (ret)
		return;

	/*
	 * The doorbell's pass runs in the task that rings it, as its write(2)
	 * returns: by then the entry is taken and (a NOP) completed. A pass on
	 * the workqueue would mostly come later.
	 */
	for (i = 0; i < 100; i++) {
		e = (struct zcusb_sqe){ .opcode = ZCUSB_OP_NOP, .user_data = 100 + i };
		tq_push(&q, &e);
		rung += !!(__atomic_load_n(&q.h->sq_flags.value, __ATOMIC_ACQUIRE) & ZCUSB_SQ_NEED_WAKEUP);
		tq_ring(&q);
		served += __atomic_load_n(&q.h->sq_head.value, __ATOMIC_ACQUIRE) == q.tail &&
			  __atomic_load_n(&q.h->cq_tail.value, __ATOMIC_ACQUIRE) == q.head + 1;
		if (tq_reap(&q, &c, 1000) || c.user_data != 100 + i || c.status)
			break;
	}
	CHECK(i == 100 && served == 100,
	      "100 NOPs: each taken and completed by the time its doorbell's write(2) returned: %u", served);
	CHECK(rung == 100, "the doorbell stayed on (NEED_WAKEUP) before each of them: %u", rung);

	/* a completion reaches the ring with no doorbell after the submission */
	e = bulk(d->ep_out, 9, 0, LOOP_BUFLEN, 1);
	tq_push(&q, &e);
	e = bulk(d->ep_in, 9, IN_AREA, LOOP_BUFLEN, 2);
	tq_push(&q, &e);
	tq_ring(&q);
	ret = tq_reap(&q, &c, 5000);
	ret = ret ?: (c.user_data == 1 && c.status == 0 ? tq_reap(&q, &c, 5000) : -EIO);
	CHECK(ret == 0 && c.user_data == 2 && c.status == 0 && c.actual_length == LOOP_BUFLEN &&
	      (q.h->sq_flags.value & ZCUSB_SQ_NEED_WAKEUP),
	      "OUT and IN with one doorbell: both completed, doorbell on (%s, flags %#x)",
	      ret ? strerror(-ret) : "ok", q.h->sq_flags.value);

	/*
	 * One io_uring submission rings the doorbell (its pass queued on this
	 * task, holding the device file) and closes the device file: release()
	 * must come after the pass, not wait for it on the same task (a hang):
	 * the queue ends -ESHUTDOWN, the calls return, the module references
	 * go back to what the open files hold.
	 */
	e = bulk(d->ep_in, 9, IN_AREA, 512, 3);
	tq_push(&q, &e);
	tq_ring(&q);
	ret = uring_open(&u);
	CHECK(ret == 0, "io_uring: %s", ret ? strerror(-ret) : "ok");
	if (ret) {
		tq_close(&q);
		dev_close(d);
		dev_open(d);
		return;
	}
	refs = module_refcnt();
	uring_push(&u, &(struct io_uring_sqe){ .opcode = IORING_OP_WRITE, .fd = q.submit_fd,
					       .addr = (uintptr_t)&one, .len = sizeof(one),
					       .user_data = 0 });
	uring_push(&u, &(struct io_uring_sqe){ .opcode = IORING_OP_CLOSE, .fd = d->fd, .user_data = 1 });
	ret = syscall(__NR_io_uring_enter, u.fd, 2, 0, 0, NULL, 0);
	d->fd = -1;
	CHECK(ret == 2, "one io_uring_enter: doorbell write and close of the device fd submitted: %d", ret);
	ret = uring_reap(&u, res, 2, 5000);
	CHECK(ret == 2 && res[0] == sizeof(one) && res[1] == 0, "both done: write %d, close %d", res[0],
	      res[1]);
	ret = tq_reap(&q, &c, 2000);
	CHECK(ret == 0 && c.user_data == 3 && c.status == -ESHUTDOWN &&
	      (q.h->sq_flags.value & ZCUSB_SQ_DEAD),
	      "the pending IN -> %d, ring flags %#x", c.status, q.h->sq_flags.value);
	uring_close(&u);
	tq_close(&q);
	dev_open(d);
	usleep(100 * 1000);
	/* the same files open as before: the leftover pass took its reference along */
	CHECK(module_refcnt() == refs, "module references with the device reopened: %ld (%ld before)",
	      module_refcnt(), refs);
}
