/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The target types of dm-dmkit (core-as/targets/registry.ts). */
#ifndef DMK_TARGETS_H
#define DMK_TARGETS_H

#include "dmk.h"

extern struct target_type dmk_linear_target;
extern struct target_type dmk_striped_target;
extern struct target_type dmk_zero_target;
extern struct target_type dmk_error_target;
extern struct target_type dmk_snapshot_target;
extern struct target_type dmk_origin_target;
extern struct target_type dmk_merge_target;
extern struct target_type dmk_ebs_target;
extern struct target_type dmk_flakey_target;
extern struct target_type dmk_delay_target;

#endif /* DMK_TARGETS_H */
