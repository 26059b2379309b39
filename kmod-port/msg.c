// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ti->error is a plain pointer that device-mapper prints right after a
 * failed ctr and never frees, so kernel targets use string literals. The
 * core's messages carry the offending values ("target length 100 is not
 * divisible by the number of stripes (3)"), so they are formatted into a
 * small ring of static buffers: a slot is reused only after DMK_MSG_SLOTS
 * later failures, long after dm-table has logged it.
 */
#include "msg.h"

#define DMK_MSG_SLOTS	16
#define DMK_MSG_LEN	256

static char dmk_msgs[DMK_MSG_SLOTS][DMK_MSG_LEN];
static atomic_t dmk_msg_next = ATOMIC_INIT(0);

void dmk_set_error(struct dm_target *ti, const char *fmt, ...)
{
	unsigned int slot = (unsigned int)atomic_inc_return(&dmk_msg_next) % DMK_MSG_SLOTS;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dmk_msgs[slot], DMK_MSG_LEN, fmt, ap);
	va_end(ap);
	ti->error = dmk_msgs[slot];
}
