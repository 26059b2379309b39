// Linux errno values: statuses are positive, failed calls return them negated.
export const EPERM: i32 = 1;
export const ENOENT: i32 = 2;
export const EIO: i32 = 5;
export const ENXIO: i32 = 6;
export const ENOMEM: i32 = 12;
export const EBUSY: i32 = 16;
export const EEXIST: i32 = 17;
export const ENODEV: i32 = 19;
export const EINVAL: i32 = 22;
export const ENOSPC: i32 = 28;
export const EOPNOTSUPP: i32 = 95;
