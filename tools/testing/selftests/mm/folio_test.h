/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Glue between the kselftest harness and folio_util for the test programs:
 * the folio-size variants, the common setup/teardown and main().
 * Include after kselftest_harness.h.
 */
#ifndef FOLIO_TEST_H
#define FOLIO_TEST_H

#include "folio_util.h"

/*
 * Every anonymous mTHP size a 4 KiB-page kernel can offer, PMD size
 * included. A size the running kernel does not offer SKIPs in setup.
 * The fixture's variant struct must have a "size_kb" member.
 */
#define FOLIO_SIZE_VARIANTS(fixture)					\
	FIXTURE_VARIANT_ADD(fixture, 8kB) { .size_kb = 8 };		\
	FIXTURE_VARIANT_ADD(fixture, 16kB) { .size_kb = 16 };		\
	FIXTURE_VARIANT_ADD(fixture, 32kB) { .size_kb = 32 };		\
	FIXTURE_VARIANT_ADD(fixture, 64kB) { .size_kb = 64 };		\
	FIXTURE_VARIANT_ADD(fixture, 128kB) { .size_kb = 128 };	\
	FIXTURE_VARIANT_ADD(fixture, 256kB) { .size_kb = 256 };	\
	FIXTURE_VARIANT_ADD(fixture, 512kB) { .size_kb = 512 };	\
	FIXTURE_VARIANT_ADD(fixture, 1024kB) { .size_kb = 1024 };	\
	FIXTURE_VARIANT_ADD(fixture, 2048kB) { .size_kb = 2048 }

/*
 * Common setup of a fixture (self needs "struct kmsg_watch kmsg"): root,
 * log watched, stack grown. FOLIO_SETUP adds an anonymous folio size:
 * offered, and the only size enabled.
 */
#define FOLIO_SETUP_COMMON()						\
	do {								\
		folio_test_started();					\
		if (!is_root())						\
			SKIP(return, "needs root (pagemap PFNs, THP sysfs)"); \
		kmsg_begin(&self->kmsg);				\
		stack_prefault();					\
		maps_prefault();					\
	} while (0)

#define FOLIO_SETUP(size)						\
	do {								\
		FOLIO_SETUP_COMMON();					\
		if (!mthp_size_offered(size))				\
			SKIP(return, "kernel offers no %zu kB folios",	\
			     (size_t)(size) / 1024);			\
		ASSERT_EQ(0, mthp_only(size))				\
			TH_LOG("cannot enable %zu kB folios",		\
			       (size_t)(size) / 1024);			\
	} while (0)

/*
 * Build the variant's folio aligned (self: f, size, why), or SKIP when the
 * kernel gives none.
 */
#define FOLIO_BUILD(self, seed_gen)					\
	do {								\
		int __ret = folio_build((self)->size, -1,		\
					pattern_seed(seed_gen), &(self)->f, \
					(self)->why, sizeof((self)->why)); \
		if (__ret == -EAGAIN)					\
			SKIP(return, "no %zu kB folio: %s",		\
			     (self)->size / 1024, (self)->why);		\
		ASSERT_EQ(0, __ret) TH_LOG("building: %s", (self)->why); \
	} while (0)

/* SKIP unless an LRU reclaim driver was found (self: lru). */
#define FOLIO_NEED_LRU(self)						\
	do {								\
		if ((self)->lru.kind == LRU_NONE)			\
			SKIP(return, "no LRU reclaim driver: %s",	\
			     (self)->lru.why);				\
	} while (0)

/* Common teardown: settings back as saved, no bug in the kernel log. */
#define FOLIO_TEARDOWN()						\
	do {								\
		char bad_line[512] = "";				\
		int bad_lines;						\
									\
		/*							\
		 * Plain ifs, not EXPECT: after an ASSERT the harness	\
		 * still has its handler armed, and an EXPECT that	\
		 * holds would print its message.			\
		 */							\
		if (settings_restore()) {				\
			TH_LOG("THP settings did not read back as saved"); \
			_metadata->exit_code = KSFT_FAIL;		\
		}							\
		bad_lines = kmsg_check(&self->kmsg, bad_line,		\
				       sizeof(bad_line));		\
		kmsg_end(&self->kmsg);					\
		if (bad_lines) {					\
			TH_LOG("kernel log during the test: %d bad lines, the first: %s", \
			       bad_lines, bad_line);			\
			_metadata->exit_code = KSFT_FAIL;		\
		}							\
	} while (0)

/*
 * On SIGINT/SIGTERM the harness's main process restores the settings; the
 * test it is running lives in its own process group and would go on (and
 * change settings again) unless stopped first. The harness keeps that
 * process's pid to itself (__active_test, gone after 6.12), so the setup
 * (run in a grandchild, in the group the harness's child leads) records
 * the group in memory shared with main.
 */
static pid_t *folio_running_test;

static inline void folio_test_started(void)
{
	if (folio_running_test)
		*folio_running_test = getpgrp();
}

static inline void folio_stop_running_test(void)
{
	pid_t pid = folio_running_test ? *folio_running_test : 0;
	siginfo_t si;

	/* Only a group led by a child not yet reaped: no reused pid. */
	if (pid <= 0 || waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT))
		return;
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static inline void folio_test_no_prepare(void)
{
}

/*
 * main(): save every THP setting first so that any exit restores it; then
 * prepare() (as root: e.g. scratch file systems every test uses), then the
 * harness.
 */
#define FOLIO_TEST_MAIN_WITH(prepare)					\
	int main(int argc, char **argv)					\
	{								\
		folio_util_init();					\
		if (is_root()) {					\
			folio_running_test = mmap(NULL, sizeof(pid_t),	\
				PROT_READ | PROT_WRITE,			\
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);	\
			if (folio_running_test == MAP_FAILED)		\
				folio_running_test = NULL;		\
			settings_save();				\
			settings_on_signal(folio_stop_running_test);	\
			prepare();					\
		}							\
		return test_harness_run(argc, argv);			\
	}

#define FOLIO_TEST_MAIN FOLIO_TEST_MAIN_WITH(folio_test_no_prepare)

#endif /* FOLIO_TEST_H */
