// SPDX-License-Identifier: GPL-2.0
/*
 * Self-check of the large folio builder every other test stands on: for
 * every folio size the kernel offers, a folio built aligned and one built
 * straddling a PMD boundary at every page offset must be one physically
 * contiguous, naturally aligned compound folio of exactly that size, mapped
 * where the builder says, holding the data it was filled with.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "../kselftest_harness.h"
#include "folio_test.h"

FIXTURE(folio)
{
	struct kmsg_watch kmsg;
	size_t size;
};

FIXTURE_VARIANT(folio)
{
	size_t size_kb;
};

FOLIO_SIZE_VARIANTS(folio);

FIXTURE_SETUP(folio)
{
	self->size = variant->size_kb * 1024;
	FOLIO_SETUP(self->size);
}

FIXTURE_TEARDOWN(folio)
{
	FOLIO_TEARDOWN();
}

/*
 * An aligned folio: one VMA of exactly the folio, naturally aligned, one
 * compound folio of that size. Guards against a kernel that hands out a
 * folio of another order than the one enabled (mTHP order selection), or
 * maps it at the wrong place; PMD size must be PMD-mapped.
 */
TEST_F(folio, aligned)
{
	struct large_folio f;
	struct smaps_sum s;
	char why[256];
	int ret;

	/*
	 * Here, unlike in the other programs, not getting the folio is a
	 * failure: the kernel offers the size, it is enabled, and the range
	 * is aligned and advised.
	 */
	ret = folio_build(self->size, -1, pattern_seed(0), &f, why, sizeof(why));
	ASSERT_EQ(0, ret) TH_LOG("building: %s", why);

	EXPECT_EQ(0, (uintptr_t)f.addr % self->size)
		TH_LOG("folio at %p, not aligned to its size", f.addr);
	EXPECT_EQ(0, folio_check(&f, why, sizeof(why))) TH_LOG("%s", why);
	EXPECT_EQ(0, verify_all(f.addr, f.nr, f.seed, 0, PAGE_ORIGINAL, why,
				sizeof(why))) TH_LOG("%s", why);
	ASSERT_EQ(0, smaps_range(f.addr, f.size, &s));
	EXPECT_EQ(1, s.vmas) TH_LOG("the folio spans %d VMAs", s.vmas);
	EXPECT_EQ((long)(self->size / 1024), s.rss)
		TH_LOG("Rss of the folio's VMA");
	EXPECT_EQ(self->size == pmdsize ? (long)(self->size / 1024) : 0,
		  s.anon_huge) TH_LOG("AnonHugePages (PMD-mapped kB)");
	folio_destroy(&f);
}

/*
 * A folio straddling a PMD boundary at every page offset (seed 003): the
 * first k pages in one page table, the rest in the next, still one
 * contiguous folio holding its data after the mremap. Guards against
 * mremap splitting or copying the folio, which would leave the boundary
 * cases of every later test untested.
 */
TEST_F(folio, pmd_crossing)
{
	size_t nr = self->size / pagesize;
	struct large_folio f;
	char why[256];

	for (size_t k = 1; k < nr; k++) {
		uint64_t seed = pattern_seed(k);
		int ret;

		ret = folio_build(self->size, k, seed, &f, why, sizeof(why));
		ASSERT_EQ(0, ret) TH_LOG("offset %zu: %s", k, why);
		ASSERT_EQ(0, (uintptr_t)(f.addr + k * pagesize) % pmdsize)
			TH_LOG("offset %zu: page %zu at %p is not on a PMD boundary",
			       k, k, f.addr + k * pagesize);
		ASSERT_EQ(0, folio_check(&f, why, sizeof(why)))
			TH_LOG("offset %zu: %s", k, why);
		ASSERT_EQ(0, verify_all(f.addr, f.nr, seed, 0, PAGE_ORIGINAL,
					why, sizeof(why)))
			TH_LOG("offset %zu: %s", k, why);
		folio_destroy(&f);
	}
}

FOLIO_TEST_MAIN
