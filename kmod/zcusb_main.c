// SPDX-License-Identifier: GPL-2.0
/*
 * zcusb.ko: zero-copy USB interface access for zcusbd.
 *
 * A USB interface driver without an id table: it binds only interfaces
 * named in its "allow" driver attribute (written by zcusbd or its udev
 * helper before new_id/bind), and gives each bound interface a char device
 * /dev/zcusb/<interface> (mode 0600) with the ABI of zcusb_abi.h.
 *
 * This file: module parameters, the allow list and stats attributes, the
 * usb_driver (probe/disconnect), the class and char devices, and the file
 * operations (open, release, poll, ioctl dispatch).
 */
#include <linux/cdev.h>
#include <linux/ctype.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "zcusb.h"

bool zcusb_disable_zerocopy;
module_param_named(disable_zerocopy, zcusb_disable_zerocopy, bool, 0644);
MODULE_PARM_DESC(disable_zerocopy,
		 "Copy through kernel buffers instead of DMA to user pages (A/B runs)");

unsigned int zcusb_max_pinned_mb = 256;
module_param_named(max_pinned_mb, zcusb_max_pinned_mb, uint, 0644);
MODULE_PARM_DESC(max_pinned_mb,
		 "User memory one opener may have pinned, in MiB (default 256)");

unsigned int zcusb_max_bounce_mb = 64;
module_param_named(max_bounce_mb, zcusb_max_bounce_mb, uint, 0644);
MODULE_PARM_DESC(max_bounce_mb,
		 "Kernel memory (bounce buffers, URBs) one opener may hold, in MiB (default 64)");

/* for tests of the split paths on controllers that take any SG list */
int zcusb_max_sg_entries = -1;
module_param_named(max_sg_entries, zcusb_max_sg_entries, int, 0644);
MODULE_PARM_DESC(max_sg_entries,
		 "Testing: SG entries per URB at most (-1: as the bus allows, 0: no SG)");

/* for tests of zcusbd's fallback to usbfs when the ABI does not match */
static unsigned int zcusb_abi_version_override;
module_param_named(abi_version_override, zcusb_abi_version_override, uint, 0644);
MODULE_PARM_DESC(abi_version_override,
		 "Testing only: the ABI version VERSION reports (0: the real one)");

/* for tests of zcusbd with a module that lacks a feature (iso) */
static unsigned int zcusb_hide_features;
module_param_named(hide_features, zcusb_hide_features, uint, 0644);
MODULE_PARM_DESC(hide_features,
		 "Testing only: ZCUSB_FEATURE_* bits VERSION leaves out");

struct zcusb_stats zcusb_stats;
struct workqueue_struct *zcusb_wq;

static dev_t zcusb_devt;
static struct cdev zcusb_cdev;
static struct class *zcusb_class;
static DEFINE_MUTEX(zcusb_minor_lock);
static DEFINE_IDR(zcusb_minors);

static struct usb_driver zcusb_driver;

/* --- allow list ------------------------------------------------------- */

#define ZCUSB_MAX_ALLOWED	256

struct zcusb_allowed {
	struct list_head node;
	char name[32];
};

static LIST_HEAD(zcusb_allow_list);
static DEFINE_MUTEX(zcusb_allow_lock);
static unsigned int zcusb_nallowed;

static struct zcusb_allowed *zcusb_allow_find(const char *name)
{
	struct zcusb_allowed *a;

	list_for_each_entry(a, &zcusb_allow_list, node)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

static bool zcusb_allowed(const char *name)
{
	bool ret;

	mutex_lock(&zcusb_allow_lock);
	ret = zcusb_allow_find(name) != NULL;
	mutex_unlock(&zcusb_allow_lock);
	return ret;
}

/* interface names look like 1-1.2:1.0 */
static bool zcusb_valid_name(const char *name, size_t len)
{
	size_t i;

	if (!len || len >= sizeof_field(struct zcusb_allowed, name))
		return false;
	for (i = 0; i < len; i++)
		if (!isdigit(name[i]) && name[i] != '-' && name[i] != '.' &&
		    name[i] != ':')
			return false;
	return true;
}

static ssize_t allow_store(struct device_driver *drv, const char *buf,
			   size_t count)
{
	struct zcusb_allowed *a;
	size_t len = count;
	char op;
	int ret = 0;

	while (len && isspace(buf[len - 1]))
		len--;
	if (len < 2 || (buf[0] != '+' && buf[0] != '-'))
		return -EINVAL;
	op = buf[0];
	buf++;
	len--;
	if (!zcusb_valid_name(buf, len))
		return -EINVAL;

	mutex_lock(&zcusb_allow_lock);
	list_for_each_entry(a, &zcusb_allow_list, node)
		if (strlen(a->name) == len && !memcmp(a->name, buf, len))
			break;
	if (list_entry_is_head(a, &zcusb_allow_list, node))
		a = NULL;
	if (op == '+' && !a) {
		if (zcusb_nallowed >= ZCUSB_MAX_ALLOWED) {
			ret = -ENOSPC;
		} else {
			a = kzalloc(sizeof(*a), GFP_KERNEL);
			if (a) {
				memcpy(a->name, buf, len);
				list_add_tail(&a->node, &zcusb_allow_list);
				zcusb_nallowed++;
			} else {
				ret = -ENOMEM;
			}
		}
	} else if (op == '-' && a) {
		list_del(&a->node);
		kfree(a);
		zcusb_nallowed--;
	}
	mutex_unlock(&zcusb_allow_lock);
	return ret ? ret : count;
}

static ssize_t allow_show(struct device_driver *drv, char *buf)
{
	struct zcusb_allowed *a;
	int n = 0;

	mutex_lock(&zcusb_allow_lock);
	list_for_each_entry(a, &zcusb_allow_list, node)
		n += sysfs_emit_at(buf, n, "%s\n", a->name);
	mutex_unlock(&zcusb_allow_lock);
	return n;
}
static DRIVER_ATTR_RW(allow);

static ssize_t stats_show(struct device_driver *drv, char *buf)
{
	return sysfs_emit(buf,
			  "zerocopy_bytes %lld\nbounced_bytes %lld\nurbs %lld\npinned_pages %lld\n"
			  "kqueues %lld\nkq_in_flight %lld\nkq_transfers %lld\nkq_broken %lld\n",
			  atomic64_read(&zcusb_stats.zerocopy_bytes),
			  atomic64_read(&zcusb_stats.bounced_bytes),
			  atomic64_read(&zcusb_stats.urbs),
			  atomic64_read(&zcusb_stats.pinned_pages),
			  atomic64_read(&zcusb_stats.kqueues),
			  atomic64_read(&zcusb_stats.kq_in_flight),
			  atomic64_read(&zcusb_stats.kq_transfers),
			  atomic64_read(&zcusb_stats.kq_broken));
}
static DRIVER_ATTR_RO(stats);

#ifdef ZCUSB_SELFTEST
/* the shared control-request vectors through the module's checks */
static ssize_t selftest_show(struct device_driver *drv, char *buf)
{
	return zcusb_selftest_show(buf);
}
static DRIVER_ATTR_RO(selftest);
#endif

static void zcusb_allow_clear(void)
{
	struct zcusb_allowed *a, *tmp;

	list_for_each_entry_safe(a, tmp, &zcusb_allow_list, node) {
		list_del(&a->node);
		kfree(a);
	}
	zcusb_nallowed = 0;
}

/* --- per-interface state ---------------------------------------------- */

static void zcusb_intf_release(struct kref *kref)
{
	struct zcusb_intf *zi = container_of(kref, struct zcusb_intf, kref);

	usb_put_dev(zi->udev);
	usb_put_intf(zi->intf);
	kfree(zi);
}

static int zcusb_probe(struct usb_interface *intf,
		       const struct usb_device_id *id)
{
	struct zcusb_intf *zi;
	int ret;

	if (!zcusb_allowed(dev_name(&intf->dev)))
		return -ENODEV;

	zi = kzalloc(sizeof(*zi), GFP_KERNEL);
	if (!zi)
		return -ENOMEM;
	kref_init(&zi->kref);
	mutex_init(&zi->lock);
	zi->intf = usb_get_intf(intf);
	zi->udev = usb_get_dev(interface_to_usbdev(intf));
	strscpy(zi->name, dev_name(&intf->dev), sizeof(zi->name));

	mutex_lock(&zcusb_minor_lock);
	ret = idr_alloc(&zcusb_minors, zi, 0, ZCUSB_MAX_MINORS, GFP_KERNEL);
	mutex_unlock(&zcusb_minor_lock);
	if (ret < 0)
		goto put;
	zi->minor = ret;

	zi->dev = device_create(zcusb_class, &intf->dev,
				MKDEV(MAJOR(zcusb_devt), zi->minor), zi, "%s",
				zi->name);
	if (IS_ERR(zi->dev)) {
		ret = PTR_ERR(zi->dev);
		goto remove;
	}
	usb_set_intfdata(intf, zi);
	dev_dbg(&intf->dev, "zcusb: bound, minor %d\n", zi->minor);
	return 0;

remove:
	mutex_lock(&zcusb_minor_lock);
	idr_remove(&zcusb_minors, zi->minor);
	mutex_unlock(&zcusb_minor_lock);
put:
	kref_put(&zi->kref, zcusb_intf_release);
	return ret;
}

static void zcusb_disconnect(struct usb_interface *intf)
{
	struct zcusb_intf *zi = usb_get_intfdata(intf);

	/* no new opens */
	mutex_lock(&zcusb_minor_lock);
	idr_remove(&zcusb_minors, zi->minor);
	mutex_unlock(&zcusb_minor_lock);
	device_unregister(zi->dev);

	mutex_lock(&zi->lock);
	zi->disconnected = true;
	zi->dev = NULL;
	/* every transfer completes with -ENODEV; the opener keeps its file */
	if (zi->opener) {
		zcusb_kill_all(zi->opener, true);
		zcusb_queue_disconnect(zi->opener);
	}
	mutex_unlock(&zi->lock);

	usb_set_intfdata(intf, NULL);
	kref_put(&zi->kref, zcusb_intf_release);
}

/*
 * System sleep: nothing to save. Like usbfs, the URBs in flight are not kept:
 * the core flushes the endpoints after this (-ESHUTDOWN, which completion
 * reports as -ENODEV, as for an unbind) and submissions fail until resume.
 * (No reset_resume/pre_reset/post_reset: after a reset the core unbinds and
 * reprobes, which the opener sees as a disconnect.)
 */
static int zcusb_suspend(struct usb_interface *intf, pm_message_t msg)
{
	return 0;
}

static int zcusb_resume(struct usb_interface *intf)
{
	return 0;
}

/* --- file operations -------------------------------------------------- */

static int zcusb_open(struct inode *inode, struct file *file)
{
	struct zcusb_opener *c;
	struct zcusb_intf *zi;
	int ret;

	mutex_lock(&zcusb_minor_lock);
	zi = idr_find(&zcusb_minors, iminor(inode));
	if (zi)
		kref_get(&zi->kref);
	mutex_unlock(&zcusb_minor_lock);
	if (!zi)
		return -ENODEV;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c) {
		ret = -ENOMEM;
		goto put;
	}
	zcusb_opener_init(c, zi);

	ret = mutex_lock_interruptible(&zi->lock);
	if (ret)
		goto free;
	if (zi->disconnected)
		ret = -ENODEV;
	else if (zi->opener)
		ret = -EBUSY;	/* one opener per interface */
	else
		zi->opener = c;
	mutex_unlock(&zi->lock);
	if (ret)
		goto free;

	c->file = file;
	file->private_data = c;
	return stream_open(inode, file);

free:
	kfree(c);
put:
	kref_put(&zi->kref, zcusb_intf_release);
	return ret;
}

static int zcusb_release(struct inode *inode, struct file *file)
{
	struct zcusb_opener *c = file->private_data;
	struct zcusb_intf *zi = c->zi;

	/* zcusbd is gone (stopped or killed): its queues end with it */
	zcusb_queue_detach_all(c, -ESHUTDOWN);
	mutex_lock(&zi->lock);
	if (!zi->disconnected)
		zcusb_kill_all(c, false);
	zcusb_free_all(c);
	zcusb_unregister_all(c);
	WARN_ON(c->pinned_pages || c->kmem);
	zi->opener = NULL;
	mutex_unlock(&zi->lock);

	kfree(c);
	kref_put(&zi->kref, zcusb_intf_release);
	return 0;
}

static __poll_t zcusb_poll(struct file *file, poll_table *wait)
{
	struct zcusb_opener *c = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &c->wait, wait);
	spin_lock_irq(&c->lock);
	if (!list_empty(&c->completed))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (c->disconnected)
		mask |= EPOLLERR | EPOLLHUP;
	spin_unlock_irq(&c->lock);
	return mask;
}

static int zcusb_ioc_version(void __user *arg)
{
	struct zcusb_version v = {
		.abi_version = READ_ONCE(zcusb_abi_version_override) ?:
			       ZCUSB_ABI_VERSION,
		.zerocopy = !READ_ONCE(zcusb_disable_zerocopy),
		.max_transfer = ZCUSB_MAX_TRANSFER,
		.features = ZCUSB_FEATURE_ISO & ~READ_ONCE(zcusb_hide_features),
	};

	return copy_to_user(arg, &v, sizeof(v)) ? -EFAULT : 0;
}

static int zcusb_ioc_register(struct zcusb_opener *c, void __user *arg)
{
	struct zcusb_register reg;
	int ret;

	if (copy_from_user(&reg, arg, sizeof(reg)))
		return -EFAULT;
	ret = zcusb_register(c, &reg);
	if (ret)
		return ret;
	if (copy_to_user(arg, &reg, sizeof(reg))) {
		zcusb_unregister(c, reg.buffer_id);
		return -EFAULT;
	}
	return 0;
}

static int zcusb_ioc_set_alt(struct zcusb_opener *c,
			     const struct zcusb_alt *alt)
{
	struct zcusb_intf *zi = c->zi;

	if (alt->reserved || alt->alt_setting > 255)
		return -EINVAL;
	if (zcusb_busy(c))
		return -EBUSY;
	return usb_set_interface(zi->udev,
				 zi->intf->cur_altsetting->desc.bInterfaceNumber,
				 alt->alt_setting);
}

static int zcusb_ioc_clear_halt(struct zcusb_opener *c, u32 ep)
{
	struct zcusb_intf *zi = c->zi;
	struct usb_host_interface *alt = zi->intf->cur_altsetting;
	unsigned int pipe, i;

	if (ep > 0xff)
		return -EINVAL;
	for (i = 0; i < alt->desc.bNumEndpoints; i++)
		if (alt->endpoint[i].desc.bEndpointAddress == ep)
			break;
	if (i == alt->desc.bNumEndpoints)
		return -EINVAL;
	if (ep & USB_DIR_IN)
		pipe = usb_rcvbulkpipe(zi->udev, ep & USB_ENDPOINT_NUMBER_MASK);
	else
		pipe = usb_sndbulkpipe(zi->udev, ep & USB_ENDPOINT_NUMBER_MASK);
	return usb_clear_halt(zi->udev, pipe);
}

/*
 * QUEUE_DETACH; takes zi->lock itself (it waits for the queue's work). The
 * final counters go to stats_addr, taken after the module stopped serving:
 * nothing counted is missed between a last QUEUE_STATS and the detach.
 */
static int zcusb_ioc_queue_detach(struct zcusb_opener *c, void __user *p)
{
	struct zcusb_queue_detach d;
	struct zcusb_queue_stats st;
	void __user *up;
	int ret;

	if (copy_from_user(&d, p, sizeof(d)))
		return -EFAULT;
	up = u64_to_user_ptr(d.stats_addr);
	/* a bad address fails here, before the queue is detached */
	if (d.stats_addr && !access_ok(up, sizeof(st)))
		return -EFAULT;
	ret = zcusb_queue_detach(c, &d, d.stats_addr ? &st : NULL);
	if (ret)
		return ret;
	if (copy_to_user(p, &d, sizeof(d)))
		return -EFAULT;
	if (d.stats_addr && copy_to_user(up, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

static long zcusb_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct zcusb_opener *c = file->private_data;
	struct zcusb_intf *zi = c->zi;
	void __user *p = (void __user *)arg;
	union {
		struct zcusb_submit submit;
		struct zcusb_queue_attach attach;
		struct zcusb_queue_stats stats;
		struct zcusb_buffer_alias alias;
		struct zcusb_alt alt;
		u64 user_data;
		u32 u32;
	} a;
	long ret;

	/* copy arguments in before taking the lock */
	switch (cmd) {
	case ZCUSB_IOC_VERSION:
		return zcusb_ioc_version(p);
	case ZCUSB_IOC_SUBMIT:
		ret = copy_from_user(&a.submit, p, sizeof(a.submit));
		break;
	case ZCUSB_IOC_SET_ALT:
		ret = copy_from_user(&a.alt, p, sizeof(a.alt));
		break;
	case ZCUSB_IOC_QUEUE_ATTACH:
		ret = copy_from_user(&a.attach, p, sizeof(a.attach));
		break;
	case ZCUSB_IOC_BUFFER_ALIAS:
		ret = copy_from_user(&a.alias, p, sizeof(a.alias));
		break;
	case ZCUSB_IOC_QUEUE_DETACH:
		return zcusb_ioc_queue_detach(c, p);
	case ZCUSB_IOC_QUEUE_STATS:
		ret = copy_from_user(&a.stats, p, sizeof(a.stats));
		break;
	case ZCUSB_IOC_CANCEL:
		ret = get_user(a.user_data, (u64 __user *)p);
		break;
	case ZCUSB_IOC_UNREGISTER:
	case ZCUSB_IOC_CLEAR_HALT:
		ret = get_user(a.u32, (u32 __user *)p);
		break;
	case ZCUSB_IOC_REGISTER:
	case ZCUSB_IOC_REAP:
		ret = 0;
		break;
	default:
		return -ENOTTY;
	}
	if (ret)
		return -EFAULT;

	if (mutex_lock_interruptible(&zi->lock))
		return -ERESTARTSYS;
	/* after disconnect only what drains, frees or reads counters works */
	if (zi->disconnected && cmd != ZCUSB_IOC_REAP &&
	    cmd != ZCUSB_IOC_UNREGISTER && cmd != ZCUSB_IOC_QUEUE_STATS) {
		ret = -ENODEV;
		goto out;
	}

	switch (cmd) {
	case ZCUSB_IOC_REGISTER:
		ret = zcusb_ioc_register(c, p);
		break;
	case ZCUSB_IOC_UNREGISTER:
		/* ended transfers of the range leave it first */
		zcusb_queue_reclaim_all(c);
		ret = zcusb_unregister(c, a.u32);
		break;
	case ZCUSB_IOC_SUBMIT:
		ret = zcusb_submit(c, &a.submit);
		break;
	case ZCUSB_IOC_REAP:
		ret = zcusb_reap(c, p);
		break;
	case ZCUSB_IOC_CANCEL:
		ret = zcusb_cancel(c, a.user_data);
		break;
	case ZCUSB_IOC_SET_ALT:
		ret = zcusb_ioc_set_alt(c, &a.alt);
		break;
	case ZCUSB_IOC_CLEAR_HALT:
		ret = zcusb_ioc_clear_halt(c, a.u32);
		break;
	case ZCUSB_IOC_BUFFER_ALIAS:
		ret = zcusb_buffer_alias(c, &a.alias);
		break;
	case ZCUSB_IOC_QUEUE_ATTACH:
		ret = zcusb_queue_attach(c, &a.attach);
		if (!ret && copy_to_user(p, &a.attach, sizeof(a.attach))) {
			struct zcusb_queue_detach d = {
				.queue_id = a.attach.queue_id,
				.end_status = -EFAULT,
			};

			mutex_unlock(&zi->lock);
			zcusb_queue_detach(c, &d, NULL);
			return -EFAULT;
		}
		break;
	case ZCUSB_IOC_QUEUE_STATS:
		ret = zcusb_queue_stats(c, &a.stats);
		if (!ret && copy_to_user(p, &a.stats, sizeof(a.stats)))
			ret = -EFAULT;
		break;
	}
out:
	mutex_unlock(&zi->lock);
	return ret;
}

static const struct file_operations zcusb_fops = {
	.owner		= THIS_MODULE,
	.open		= zcusb_open,
	.release	= zcusb_release,
	.poll		= zcusb_poll,
	.unlocked_ioctl	= zcusb_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= no_llseek,
};

/* --- driver and module ------------------------------------------------ */

static struct usb_driver zcusb_driver = {
	.name		= ZCUSB_NAME,
	.probe		= zcusb_probe,
	.disconnect	= zcusb_disconnect,
	.suspend	= zcusb_suspend,
	.resume		= zcusb_resume,
	/* no id_table: interfaces come through new_id + the allow list */
	.supports_autosuspend = 0,
};

#ifdef ZCUSB_HAVE_DRVWRAP
#define ZCUSB_DRV	(&zcusb_driver.drvwrap.driver)
#else
#define ZCUSB_DRV	(&zcusb_driver.driver)
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
static char *zcusb_devnode(const struct device *dev, umode_t *mode)
#else
static char *zcusb_devnode(struct device *dev, umode_t *mode)
#endif
{
	if (mode)
		*mode = 0600;
	return kasprintf(GFP_KERNEL, ZCUSB_NAME "/%s", dev_name(dev));
}

static int __init zcusb_init(void)
{
	int ret;

	/* in-kernel queues' work items; sleeps (zi->lock, URB allocation) */
	zcusb_wq = alloc_workqueue(ZCUSB_NAME, WQ_HIGHPRI, 0);
	if (!zcusb_wq)
		return -ENOMEM;
	ret = alloc_chrdev_region(&zcusb_devt, 0, ZCUSB_MAX_MINORS, ZCUSB_NAME);
	if (ret)
		goto destroy_wq;
	cdev_init(&zcusb_cdev, &zcusb_fops);
	zcusb_cdev.owner = THIS_MODULE;
	ret = cdev_add(&zcusb_cdev, zcusb_devt, ZCUSB_MAX_MINORS);
	if (ret)
		goto unregister_region;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	zcusb_class = class_create(ZCUSB_NAME);
#else
	zcusb_class = class_create(THIS_MODULE, ZCUSB_NAME);
#endif
	if (IS_ERR(zcusb_class)) {
		ret = PTR_ERR(zcusb_class);
		goto del_cdev;
	}
	zcusb_class->devnode = zcusb_devnode;

	ret = usb_register(&zcusb_driver);
	if (ret)
		goto destroy_class;
	ret = driver_create_file(ZCUSB_DRV, &driver_attr_allow);
	if (ret)
		goto deregister;
	ret = driver_create_file(ZCUSB_DRV, &driver_attr_stats);
	if (ret)
		goto remove_allow;
#ifdef ZCUSB_SELFTEST
	ret = driver_create_file(ZCUSB_DRV, &driver_attr_selftest);
	if (ret)
		goto remove_stats;
#endif
	return 0;

#ifdef ZCUSB_SELFTEST
remove_stats:
	driver_remove_file(ZCUSB_DRV, &driver_attr_stats);
#endif
remove_allow:
	driver_remove_file(ZCUSB_DRV, &driver_attr_allow);
deregister:
	usb_deregister(&zcusb_driver);
destroy_class:
	class_destroy(zcusb_class);
del_cdev:
	cdev_del(&zcusb_cdev);
unregister_region:
	unregister_chrdev_region(zcusb_devt, ZCUSB_MAX_MINORS);
destroy_wq:
	destroy_workqueue(zcusb_wq);
	return ret;
}

static void __exit zcusb_exit(void)
{
#ifdef ZCUSB_SELFTEST
	driver_remove_file(ZCUSB_DRV, &driver_attr_selftest);
#endif
	driver_remove_file(ZCUSB_DRV, &driver_attr_stats);
	driver_remove_file(ZCUSB_DRV, &driver_attr_allow);
	/* unbinds every interface; no file is open (module refcount) */
	usb_deregister(&zcusb_driver);
	class_destroy(zcusb_class);
	cdev_del(&zcusb_cdev);
	unregister_chrdev_region(zcusb_devt, ZCUSB_MAX_MINORS);
	idr_destroy(&zcusb_minors);
	destroy_workqueue(zcusb_wq);
	mutex_lock(&zcusb_allow_lock);
	zcusb_allow_clear();
	mutex_unlock(&zcusb_allow_lock);
}

module_init(zcusb_init);
module_exit(zcusb_exit);

MODULE_DESCRIPTION("zcusb: zero-copy USB interface access for zcusbd");
MODULE_AUTHOR("zcusb project");
MODULE_LICENSE("GPL");
/* PACKAGE_VERSION of dkms.conf; zcusbd reports it as ModuleVersion */
MODULE_VERSION("0.2.0");
