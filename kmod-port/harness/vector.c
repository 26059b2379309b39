// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The golden vector format in C (docs/vectors.md), statement for statement
 * as test/vectors/lib/parse.js reads it, with the same checks and wording
 * for the errors a runner can meet.
 */
#include "vector.h"
#include <setjmp.h>

#define MAX_LINE_WORDS 512

static const char *const errnos[] = {
	"EPERM", "EIO", "ENXIO", "ENODEV", "EBUSY", "EEXIST", "EINVAL", "ENOSPC", "EOPNOTSUPP",
};

struct parser {
	const char *file;
	int line;
	char *error;
	size_t error_len;
	jmp_buf bail;
	/* device names from every table/create statement (collected first, as parse.js does) */
	char **devices;
	int ndevices;
	/* pending table lines per device */
	char **pend_dev;
	char **pend_text;
	int *pend_line;
	int npend;
};

__printf(2, 3) static void __attribute__((noreturn)) bad(struct parser *p, const char *fmt, ...)
{
	size_t n = snprintf(p->error, p->error_len, "%s:%d: ", p->file, p->line);
	va_list ap;

	va_start(ap, fmt);
	if (n < p->error_len)
		vsnprintf(p->error + n, p->error_len - n, fmt, ap);
	va_end(ap);
	longjmp(p->bail, 1);
}

static bool valid_name(const char *s)
{
	if (!(*s >= 'a' && *s <= 'z'))
		return false;
	for (s++; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	}
	return true;
}

static bool is_device(struct parser *p, const char *name)
{
	int i;

	for (i = 0; i < p->ndevices; i++) {
		if (!strcmp(p->devices[i], name))
			return true;
	}
	return false;
}

static struct vdisk *find_disk(struct vector *v, const char *name)
{
	int i;

	for (i = 0; i < v->ndisks; i++) {
		if (!strcmp(v->disks[i].name, name))
			return &v->disks[i];
	}
	return NULL;
}

static u64 number(struct parser *p, const char *op, const char *w, const char *what, u64 max)
{
	u64 n = 0;
	const char *s = w;

	if (!w)
		bad(p, "%s: missing %s", op, what);
	if (!*s || (s[0] == '0' && s[1]))
		bad(p, "%s: %s '%s' is not an unsigned decimal number", op, what, w);
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			bad(p, "%s: %s '%s' is not an unsigned decimal number", op, what, w);
		if (n > (U64_MAX - (*s - '0')) / 10)
			bad(p, "%s: %s %s is larger than %llu", op, what, w, (unsigned long long)max);
		n = n * 10 + (*s - '0');
	}
	if (n > max)
		bad(p, "%s: %s %s is larger than %llu", op, what, w, (unsigned long long)max);
	return n;
}

static char *trim_right(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

static int split(char *s, char **w, int max)
{
	int n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			*s++ = '\0';
		if (!*s)
			return n;
		if (n < max)
			w[n++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
	}
}

/* The text after `=>`: an expectation of the kind the statement allows. */
static void parse_expect(struct parser *p, struct vstep *st, const char *op, char *raw,
			 bool control)
{
	char *text = raw, *first, *after;
	size_t i;

	while (*text == ' ' || *text == '\t')
		text++;
	trim_right(text);
	if (st->op == V_STATUS || st->op == V_TABLE_IS || st->op == V_KERNEL_LOG) {
		st->expect = E_TEXT;
		st->etext = strdup(text);
		return;
	}
	first = text;
	after = text + strcspn(text, " \t");
	if (*after) {
		*after++ = '\0';
		while (*after == ' ' || *after == '\t')
			after++;
	}
	if (!strcmp(first, "?"))
		bad(p, "%s: expectation not filled in yet (run node test/vectors/expect.js)", op);
	if (!strncmp(first, "sha256:", 7)) {
		if (strlen(first) != 71 || strspn(first + 7, "0123456789abcdef") != 64)
			bad(p, "%s: '%s' is not sha256: followed by 64 lowercase hex digits", op, first);
		if (*after && *after != '#')
			bad(p, "%s: unexpected text after the hash: '%s'", op, after);
		st->expect = E_SHA256;
		memcpy(st->hex, first + 7, 65);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(errnos); i++) {
		if (strcmp(first, errnos[i]))
			continue;
		st->expect = E_ERRNO;
		snprintf(st->errno_name, sizeof(st->errno_name), "%s", first);
		if (control) {
			st->message = *after ? strdup(after) : NULL;
		} else if (*after && *after != '#') {
			bad(p, "%s: unexpected text after the error: '%s'", op, after);
		}
		return;
	}
	if (!*first)
		bad(p, "%s: empty expectation after '=>'", op);
	bad(p, "%s: unknown expectation '%s'", op, first);
}

static void add_pending(struct parser *p, const char *dev, const char *text, int line)
{
	p->pend_dev = realloc(p->pend_dev, (p->npend + 1) * sizeof(char *));
	p->pend_text = realloc(p->pend_text, (p->npend + 1) * sizeof(char *));
	p->pend_line = realloc(p->pend_line, (p->npend + 1) * sizeof(int));
	p->pend_dev[p->npend] = strdup(dev);
	p->pend_text[p->npend] = strdup(text);
	p->pend_line[p->npend] = line;
	p->npend++;
}

/* A device's table statements since its last create/reload, joined into table text. */
static char *take_pending(struct parser *p, const char *dev)
{
	size_t len = 1;
	char *out;
	int i, k = 0;

	for (i = 0; i < p->npend; i++) {
		if (!strcmp(p->pend_dev[i], dev))
			len += strlen(p->pend_text[i]) + 1;
	}
	out = calloc(1, len);
	for (i = 0; i < p->npend; i++) {
		if (strcmp(p->pend_dev[i], dev)) {
			p->pend_dev[k] = p->pend_dev[i];
			p->pend_text[k] = p->pend_text[i];
			p->pend_line[k] = p->pend_line[i];
			k++;
			continue;
		}
		if (*out)
			strcat(out, "\n");
		strcat(out, p->pend_text[i]);
		free(p->pend_dev[i]);
		free(p->pend_text[i]);
	}
	p->npend = k;
	return out;
}

static struct vstep *new_step(struct vector *v, struct vstep *group)
{
	struct vstep **list = group ? &group->steps : &v->steps;
	int *n = group ? &group->nsteps : &v->nsteps;

	*list = realloc(*list, (*n + 1) * sizeof(**list));
	memset(&(*list)[*n], 0, sizeof(**list));
	return &(*list)[(*n)++];
}

static void arity(struct parser *p, const char *op, int args, int min, int max)
{
	if (args < min || args > max) {
		if (min == max)
			bad(p, "%s: expected %d argument(s), got %d", op, min, args);
		bad(p, "%s: expected %d to %d argument(s), got %d", op, min, max, args);
	}
}

static const char *device(struct parser *p, const char *op, const char *w)
{
	if (!is_device(p, w))
		bad(p, "%s: '%s' is not a device of this vector (no table or create names it)", op, w);
	return w;
}

static void collect_devices(struct parser *p, char *text)
{
	char *line, *save = NULL, *copy = strdup(text), *w[3];
	int n;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *hash = strchr(line, '#');

		if (hash)
			*hash = '\0';
		n = split(line, w, 3);
		if (n >= 2 && (!strcmp(w[0], "table") || !strcmp(w[0], "create")) &&
		    valid_name(w[1]) && !is_device(p, w[1])) {
			p->devices = realloc(p->devices, (p->ndevices + 1) * sizeof(char *));
			p->devices[p->ndevices++] = strdup(w[1]);
		}
	}
	free(copy);
}

static void parse_line(struct parser *p, struct vector *v, char *raw, struct vstep **group,
		       bool *saw_other, u64 *last_time)
{
	char *line = raw, *arrow, *hash, *expect = NULL, *w[MAX_LINE_WORDS], *text;
	const char *op;
	struct vstep *st;
	int n, a, i;

	while (*line == ' ' || *line == '\t')
		line++;
	trim_right(line);
	if (!*line || *line == '#')
		return;
	text = strdup(line);
	if (!strncmp(line, "about", 5) && (!line[5] || line[5] == ' ' || line[5] == '\t')) {
		if (v->about)
			bad(p, "about: given twice");
		line += 5;
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line)
			bad(p, "about: needs a text");
		v->about = strdup(line);
		free(text);
		return;
	}
	arrow = strstr(line, "=>");
	hash = strchr(line, '#');
	if (arrow && (!hash || arrow < hash)) {
		*arrow = '\0';
		expect = arrow + 2;
	} else if (hash) {
		*hash = '\0';
	}
	n = split(line, w, MAX_LINE_WORDS);
	if (n == 0) {
		free(text);
		return;
	}
	op = w[0];
	a = n - 1;
	if (strcmp(op, "disk") && strcmp(op, "derived") && strcmp(op, "aligned"))
		*saw_other = true;

	if (!strcmp(op, "derived")) {
		arity(p, op, a, 1, 1);
		if (strcmp(w[1], "hand") && strcmp(w[1], "model"))
			bad(p, "derived: must be 'hand' or 'model', not '%s'", w[1]);
		free(text);
		return;
	}
	if (!strcmp(op, "disk")) {
		struct vdisk *d;

		if (*saw_other)
			bad(p, "disk: disks are declared before any other statement");
		if (a != 2 && !(a == 4 && !strcmp(w[3], "seed")))
			bad(p, "disk: expected NAME SECTORS [seed S]");
		if (!valid_name(w[1]))
			bad(p, "disk: name '%s' does not match [a-z][a-z0-9-]*", w[1]);
		if (find_disk(v, w[1]))
			bad(p, "disk: '%s' declared twice", w[1]);
		if (is_device(p, w[1]))
			bad(p, "disk: '%s' is also a device name", w[1]);
		if (v->ndisks == (int)ARRAY_SIZE(v->disks))
			bad(p, "disk: too many disks for the harness");
		d = &v->disks[v->ndisks++];
		snprintf(d->name, sizeof(d->name), "%s", w[1]);
		d->sectors = number(p, op, w[2], "size in sectors", U64_MAX);
		d->has_seed = a == 4;
		if (d->has_seed)
			d->seed = (u32)number(p, op, w[4], "seed", U32_MAX);
		free(text);
		return;
	}
	if (!strcmp(op, "aligned")) {
		struct vdisk *d;

		arity(p, op, a, 2, 2);
		d = find_disk(v, w[1]);
		if (!d)
			bad(p, "aligned: '%s' is not a declared disk", w[1]);
		if (d->aligned)
			bad(p, "aligned: given twice for '%s'", w[1]);
		d->aligned = (unsigned int)number(p, op, w[2], "alignment in sectors", U32_MAX);
		if (!d->aligned)
			bad(p, "aligned: alignment must be at least 1 sector");
		free(text);
		return;
	}
	if (!strcmp(op, "table")) {
		char joined[8192] = "";
		size_t used = 0;

		if (a < 1)
			bad(p, "table: missing device name");
		if (!valid_name(w[1]))
			bad(p, "table: device name '%s' does not match [a-z][a-z0-9-]*", w[1]);
		if (a < 2)
			bad(p, "table: missing the table line");
		if (expect)
			bad(p, "table: takes no expectation (put it on the create or reload)");
		for (i = 2; i < n; i++)
			used += snprintf(joined + used, used < sizeof(joined) ? sizeof(joined) - used : 0,
					 "%s%s", i > 2 ? " " : "", w[i]);
		add_pending(p, w[1], joined, p->line);
		free(text);
		return;
	}
	if (!strcmp(op, "begin")) {
		arity(p, op, a, 0, 0);
		if (expect)
			bad(p, "begin: an expectation of this kind is not allowed here");
		if (*group)
			bad(p, "begin: the block opened at line %d is still open (blocks do not nest)",
			    (*group)->line);
		st = new_step(v, NULL);
		st->op = V_GROUP;
		st->line = p->line;
		st->text = text;
		*group = st;
		return;
	}
	if (!strcmp(op, "end")) {
		arity(p, op, a, 0, 0);
		if (!*group)
			bad(p, "end: no open begin");
		if ((*group)->nsteps == 0)
			bad(p, "end: empty begin/end block");
		*group = NULL;
		free(text);
		return;
	}

	st = new_step(v, *group);
	st->line = p->line;
	st->text = text;
	if (!strcmp(op, "create") || !strcmp(op, "reload")) {
		st->op = op[0] == 'c' ? V_CREATE : V_RELOAD;
		arity(p, op, a, 1, 1);
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
		st->table = take_pending(p, w[1]);
		if (!*st->table && st->op == V_RELOAD)
			bad(p, "reload: no table lines for this device");
	} else if (!strcmp(op, "suspend") || !strcmp(op, "resume") || !strcmp(op, "remove")) {
		st->op = op[0] == 's' ? V_SUSPEND : op[2] == 's' ? V_RESUME : V_REMOVE;
		arity(p, op, a, 1, 1);
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
	} else if (!strcmp(op, "message")) {
		st->op = V_MESSAGE;
		if (a < 3)
			bad(p, "message: expected DEV SECTOR WORDS...");
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
		st->sector = number(p, op, w[2], "sector", U64_MAX);
		st->nwords = n - 3;
		st->words = calloc(st->nwords, sizeof(char *));
		for (i = 0; i < st->nwords; i++)
			st->words[i] = strdup(w[3 + i]);
	} else if (!strcmp(op, "write")) {
		st->op = V_WRITE;
		if (a != 5 && !(a == 6 && !strcmp(w[6], "fua")))
			bad(p, "write: expected DEV SECTOR COUNT seed S [fua]");
		if (strcmp(w[4], "seed"))
			bad(p, "write: expected 'seed', got '%s'", w[4]);
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
		st->sector = number(p, op, w[2], "sector", U64_MAX);
		st->count = number(p, op, w[3], "count", U32_MAX);
		st->seed = (u32)number(p, op, w[5], "seed", U32_MAX);
		st->fua = a == 6;
	} else if (!strcmp(op, "read")) {
		st->op = V_READ;
		arity(p, op, a, 3, 3);
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
		st->sector = number(p, op, w[2], "sector", U64_MAX);
		st->count = number(p, op, w[3], "count", U32_MAX);
	} else if (!strcmp(op, "flush")) {
		st->op = V_FLUSH;
		arity(p, op, a, 1, 1);
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
	} else if (!strcmp(op, "discard") || !strcmp(op, "zeroes")) {
		st->op = op[0] == 'd' ? V_DISCARD : V_ZEROES;
		if (a != 3 && !(st->op == V_ZEROES && a == 4 && !strcmp(w[4], "fua")))
			bad(p, "%s: expected DEV SECTOR COUNT%s", op, st->op == V_ZEROES ? " [fua]" : "");
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
		st->sector = number(p, op, w[2], "sector", U64_MAX);
		st->count = number(p, op, w[3], "count", U32_MAX);
		st->fua = a == 4;
	} else if (!strcmp(op, "status") || !strcmp(op, "table-is")) {
		st->op = op[0] == 's' ? V_STATUS : V_TABLE_IS;
		arity(p, op, a, 1, 1);
		if (!expect)
			bad(p, "%s: needs an expectation '=> ...'", op);
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
	} else if (!strcmp(op, "hash")) {
		st->op = V_HASH;
		arity(p, op, a, 1, 1);
		if (!expect)
			bad(p, "hash: needs an expectation '=> ...'");
		if (!find_disk(v, w[1]))
			bad(p, "hash: '%s' is not a declared disk", w[1]);
		snprintf(st->disk, sizeof(st->disk), "%s", w[1]);
	} else if (!strcmp(op, "wait-merge")) {
		st->op = V_WAIT_MERGE;
		arity(p, op, a, 1, 1);
		snprintf(st->dev, sizeof(st->dev), "%s", device(p, op, w[1]));
	} else if (!strcmp(op, "kernel-log")) {
		st->op = V_KERNEL_LOG;
		arity(p, op, a, 0, 0);
		if (!expect)
			bad(p, "kernel-log: needs an expectation '=> ...'");
	} else if (!strcmp(op, "time")) {
		st->op = V_TIME;
		arity(p, op, a, 1, 1);
		if (expect)
			bad(p, "time: an expectation of this kind is not allowed here");
		st->ms = number(p, op, w[1], "milliseconds", U64_MAX);
		if (st->ms < *last_time)
			bad(p, "time: %llu is earlier than the previous time %llu",
			    (unsigned long long)st->ms, (unsigned long long)*last_time);
		*last_time = st->ms;
	} else {
		bad(p, "unknown statement '%s'", op);
	}
	if (*group && (st->op == V_HASH || st->op == V_WAIT_MERGE || st->op == V_TIME ||
		       st->op == V_KERNEL_LOG))
		bad(p, "%s: not allowed inside a begin/end block", op);
	if (expect) {
		bool control = st->op <= V_MESSAGE;

		parse_expect(p, st, op, expect, control);
		if (st->expect == E_SHA256 && st->op != V_READ && st->op != V_HASH)
			bad(p, "%s: an expectation of this kind is not allowed here", op);
		if (st->expect == E_ERRNO && (st->op == V_HASH || st->op == V_STATUS ||
					      st->op == V_TABLE_IS))
			bad(p, "%s: an expectation of this kind is not allowed here", op);
	}
}

static void parser_free(struct parser *p)
{
	int i;

	for (i = 0; i < p->ndevices; i++)
		free(p->devices[i]);
	for (i = 0; i < p->npend; i++) {
		free(p->pend_dev[i]);
		free(p->pend_text[i]);
	}
	free(p->devices);
	free(p->pend_dev);
	free(p->pend_text);
	free(p->pend_line);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, len + 1);
	if (fread(buf, 1, len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

struct vector *vector_load(const char *path, char *error, size_t len)
{
	struct parser p = { .file = path, .error = error, .error_len = len };
	struct vector *volatile v = calloc(1, sizeof(*v));
	struct vstep *group = NULL;
	bool saw_other = false;
	u64 last_time = 0;
	char *volatile text = read_file(path);
	char *line, *next;
	const char *base = strrchr(path, '/');
	size_t nlen;

	if (!text) {
		snprintf(error, len, "%s: cannot read the file", path);
		free(v);
		return NULL;
	}
	snprintf(v->name, sizeof(v->name), "%s", base ? base + 1 : path);
	nlen = strlen(v->name);
	if (nlen > 4 && !strcmp(v->name + nlen - 4, ".vec"))
		v->name[nlen - 4] = '\0';
	if (setjmp(p.bail)) {
		free(text);
		vector_free(v);
		parser_free(&p);
		return NULL;
	}
	collect_devices(&p, text);
	for (line = text; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		p.line++;
		parse_line(&p, v, line, &group, &saw_other, &last_time);
	}
	if (group) {
		p.line = group->line;
		bad(&p, "begin: block is never closed with end");
	}
	if (p.npend) {
		p.line = p.pend_line[0];
		bad(&p, "table: lines for '%s' are never used by a create or reload", p.pend_dev[0]);
	}
	p.line = 1;
	if (!v->about)
		bad(&p, "missing 'about TEXT'");
	free(text);
	parser_free(&p);
	return v;
}

static void steps_free(struct vstep *s, int n)
{
	int i, k;

	for (i = 0; i < n; i++) {
		free(s[i].text);
		free(s[i].message);
		free(s[i].etext);
		free(s[i].table);
		for (k = 0; k < s[i].nwords; k++)
			free(s[i].words[k]);
		free(s[i].words);
		steps_free(s[i].steps, s[i].nsteps);
	}
	free(s);
}

void vector_free(struct vector *v)
{
	steps_free(v->steps, v->nsteps);
	free(v->about);
	free(v);
}

bool vector_is_io(enum vop op)
{
	return op >= V_WRITE && op <= V_ZEROES;
}
