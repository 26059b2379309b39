/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The one header every dmkit C file includes first.
 *
 * The target code is written against the kernel's device-mapper API. Built as
 * the dm-dmkit module it gets the kernel's own headers; built as the userspace
 * harness (no __KERNEL__) it gets harness/kshim.h, a small stand-in for the
 * kernel types and helpers it uses.
 */
#ifndef DMK_H
#define DMK_H

#ifdef __KERNEL__
#include <linux/module.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/slab.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/sched/mm.h>
#include <linux/spinlock.h>
#include <linux/list.h>
#include <linux/workqueue.h>
#include <linux/wait.h>
#include <linux/ioprio.h>
#include <linux/log2.h>
#include <linux/string.h>
#include <linux/ctype.h>
#include <linux/kernel.h>
#else
#include "harness/kshim.h"
#endif

/* Request operations as the core numbers them (core-as/io.ts OP_*), for internal I/O. */
#define DMK_OP_READ	0
#define DMK_OP_WRITE	1
#define DMK_OP_FLUSH	2
#define DMK_OP_ZERO	3	/* a WRITE of zeroes: the engine allocates the zeroed buffer */
#define DMK_FUA		1

#endif /* DMK_H */
