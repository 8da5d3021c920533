# Batched unmap of large folios: kselftests and reproducers.
#
#   make setup [KSRC=<kernel tree>]   packages + kselftest harness (root)
#   make check                        build, run every category, check restore
#   make                              build only
#   make intree KSRC=<kernel tree>    add the tests to a kernel tree

MM := tools/testing/selftests/mm

all:
	@$(MAKE) -s --no-print-directory -C $(MM)

setup:
	@tools/setup.sh $(if $(KSRC),KSRC=$(KSRC))

check: all
	@tools/check.sh

intree:
	@tools/intree.sh $(KSRC)

clean:
	@$(MAKE) -s --no-print-directory -C $(MM) clean

.PHONY: all setup check intree clean
