/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* A golden vector, parsed (docs/vectors.md; the same rules as test/vectors/lib/parse.js). */
#ifndef DMK_VECTOR_H
#define DMK_VECTOR_H

#include "harness.h"

enum vop {
	V_CREATE, V_RELOAD, V_SUSPEND, V_RESUME, V_REMOVE, V_MESSAGE,
	V_WRITE, V_READ, V_FLUSH, V_DISCARD, V_ZEROES,
	V_STATUS, V_TABLE_IS, V_HASH, V_WAIT_MERGE, V_TIME, V_KERNEL_LOG, V_GROUP,
};

enum vexpect { E_NONE, E_SHA256, E_ERRNO, E_TEXT };

struct vdisk {
	char name[128];
	u64 sectors;
	bool has_seed;
	u32 seed;
	unsigned int aligned;
};

struct vstep {
	enum vop op;
	int line;
	char *text;		/* the source line, for messages */
	enum vexpect expect;
	char hex[65];		/* E_SHA256 */
	char errno_name[16];	/* E_ERRNO */
	char *message;		/* E_ERRNO on control statements: NULL when none */
	char *etext;		/* E_TEXT */
	char dev[128];
	char disk[128];
	char *table;		/* create/reload: the table text, one line per table statement */
	u64 sector, count, ms;
	u32 seed;
	bool fua;
	int nwords;		/* message */
	char **words;
	int nsteps;		/* group */
	struct vstep *steps;
};

struct vector {
	char name[256];
	char *about;
	int ndisks;
	struct vdisk disks[64];
	int nsteps;
	struct vstep *steps;
};

/* Parses a file; on a syntax error returns NULL with "file:line: problem" in error. */
struct vector *vector_load(const char *path, char *error, size_t len);
void vector_free(struct vector *v);
bool vector_is_io(enum vop op);

#endif /* DMK_VECTOR_H */
