# SPDX-License-Identifier: GPL-2.0
# Batched unmap of large folios: programs, their run_vmtests.sh categories and
# build rules. Included after lib.mk, both by this directory's Makefile and,
# appended by tools/intree.sh, by a kernel tree's mm/Makefile.

FOLIO_PROGS := folio_util_test folio_builder lazyfree swapout filemap ptebatch collapse
FOLIO_CATEGORIES := folio_util folio_builder lazyfree swapout filemap ptebatch collapse

FOLIO_BIN := $(addprefix $(OUTPUT)/,$(FOLIO_PROGS))
TEST_GEN_FILES += $(FOLIO_BIN)
TEST_PROGS += $(addprefix ksft_,$(addsuffix .sh,$(FOLIO_CATEGORIES)))

all: $(FOLIO_BIN)

# io_uring fixed buffers pin pages as the kernel's cow.c does. A kernel tree's
# check_config.sh sets IOURING_EXTRA_LIBS (maybe empty); here we look ourselves.
IOURING_EXTRA_LIBS ?= $(shell printf '#include <liburing.h>\nint main(void){struct io_uring r;return io_uring_queue_init(1,&r,0);}\n' | \
	$(CC) -x c - -luring -o /dev/null 2>/dev/null && echo -luring)
FOLIO_CFLAGS := $(if $(IOURING_EXTRA_LIBS),-DHAVE_LIBURING)

FOLIO_DEPS := folio_util.c folio_util.h folio_test.h
$(FOLIO_BIN): $(OUTPUT)/%: %.c $(FOLIO_DEPS) $(LOCAL_HDRS)
	$(call msg,CC,,$@)
	$(Q)$(CC) $(CFLAGS) $(FOLIO_CFLAGS) $(LDFLAGS) $(filter %.c,$^) \
		$(LDLIBS) $(IOURING_EXTRA_LIBS) -o $@
