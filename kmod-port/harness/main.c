// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * dmkit-harness: runs golden vectors through the C port of the core's
 * targets in userspace.
 *
 *   dmkit-harness [--order fifo|reverse|shuffle|stall|all] FILE.vec...
 *   dmkit-harness --selftest
 *   dmkit-harness --target-names   (each table name and the name the module registers)
 *
 * Each vector runs once per completion order (all four by default), from a
 * fresh world each time; it passes when every run does. Output is that of
 * every vector runner: `pass  NAME` or `FAIL  NAME: why` per vector, then
 * `N passed, M failed`. Exit status 1 when anything failed.
 */
#include "run.h"

static const struct {
	const char *name;
	enum order order;
	unsigned int reserve;
	enum atomic_failures atomic;
} orders[] = {
	/* new pending exceptions allocated at once under the lock, 16 kept for reuse */
	{ "fifo", ORDER_FIFO, 16, ATOMIC_FAIL_NEVER },
	/* atomic allocation always short: map allocates with the lock dropped, the worker starves */
	{ "reverse", ORDER_REVERSE, 0, ATOMIC_FAIL_ALWAYS },
	/* short one time in three: both paths, interleaved */
	{ "shuffle", ORDER_SHUFFLE, 1, ATOMIC_FAIL_SOMETIMES },
	/* FIFO, and the submitting CPU stalls after a request's first piece (pump_stall) */
	{ "stall", ORDER_STALL, 0, ATOMIC_FAIL_NEVER },
};

static u32 name_seed(const char *name)
{
	u32 h = 2166136261u;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

int selftest(void);

/*
 * AddressSanitizer's leak check stops the world with ptrace, which some
 * sandboxes forbid; the targets' own allocations are counted by the shim
 * (a leak fails the run), so it is off.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

static int usage(void)
{
	fprintf(stderr, "usage: dmkit-harness [--order fifo|reverse|shuffle|stall|all] FILE.vec...\n"
			"       dmkit-harness --selftest\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *which = "all";
	int passed = 0, failed = 0, i, k;
	char detail[8192], error[1024];

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--selftest"))
			return selftest();
		if (!strcmp(argv[i], "--target-names")) {
			dmc_print_target_names();
			return 0;
		}
		if (!strcmp(argv[i], "--order") && i + 1 < argc)
			which = argv[++i];
		else
			return usage();
	}
	if (i == argc)
		return usage();
	for (; i < argc; i++) {
		struct vector *v = vector_load(argv[i], error, sizeof(error));
		bool ok = true;

		if (!v) {
			failed++;
			printf("FAIL  %s: %s\n", argv[i], error);
			continue;
		}
		for (k = 0; k < (int)ARRAY_SIZE(orders) && ok; k++) {
			struct run_options o = {
				.order = orders[k].order,
				.seed = name_seed(v->name),
				.reserve = orders[k].reserve,
				.atomic = orders[k].atomic,
			};

			if (strcmp(which, "all") && strcmp(which, orders[k].name))
				continue;
			if (!run_vector(v, &o, detail, sizeof(detail))) {
				ok = false;
				printf("FAIL  %s: [%s] %s\n", v->name, orders[k].name, detail);
			}
		}
		if (ok) {
			passed++;
			printf("pass  %s\n", v->name);
		} else {
			failed++;
		}
		vector_free(v);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
