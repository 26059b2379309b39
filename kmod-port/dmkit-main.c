// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dm-dmkit: the dmkit core's targets as one device-mapper module, under
 * prefixed names so they run beside Linux's own (core-as/targets/registry.ts):
 * dmkit-<name>, except dmkit-origin and dmkit-merge for snapshot-origin and
 * snapshot-merge, whose prefixed names would not fit the 16 bytes dm-ioctl
 * gives a target type name (DM_MAX_TYPE_NAME). target-names.json lists them.
 */
#include "dmk.h"
#include "io.h"
#include "targets/targets.h"

#define DM_MSG_PREFIX "dmkit"

static struct target_type *dmk_targets[] = {
	&dmk_linear_target,
	&dmk_striped_target,
	&dmk_zero_target,
	&dmk_error_target,
	&dmk_snapshot_target,
	&dmk_origin_target,
	&dmk_merge_target,
	&dmk_ebs_target,
	&dmk_flakey_target,
	&dmk_delay_target,
};

static void dmk_unregister(unsigned int n)
{
	while (n--)
		dm_unregister_target(dmk_targets[n]);
}

static int __init dm_dmkit_init(void)
{
	unsigned int i;
	int r;

	r = dmk_engine_init();
	if (r) {
		DMERR("cannot start the I/O engine: %d", r);
		return r;
	}
	for (i = 0; i < ARRAY_SIZE(dmk_targets); i++) {
		r = dm_register_target(dmk_targets[i]);
		if (r) {
			DMERR("cannot register %s: %d", dmk_targets[i]->name, r);
			dmk_unregister(i);
			dmk_engine_exit();
			return r;
		}
	}
	return 0;
}

static void __exit dm_dmkit_exit(void)
{
	dmk_unregister(ARRAY_SIZE(dmk_targets));
	dmk_engine_exit();
}

module_init(dm_dmkit_init);
module_exit(dm_dmkit_exit);

MODULE_DESCRIPTION("dmkit: the portable device-mapper core's targets, ported to C");
MODULE_LICENSE("Dual MIT/GPL");
