# systemd units (contrib/systemd): the service is made from its .in with
# the configured paths; make install puts all three in systemd's unit
# directory when configure found one (or was given it).
EXTRA_DIST += \
	contrib/systemd/sgblkd@.service.in \
	contrib/systemd/sgblkd@.socket \
	contrib/systemd/sgblkd.socket
CLEANFILES += contrib/systemd/sgblkd@.service

# Built with the program, so that a test can verify it in the build tree.
noinst_DATA = contrib/systemd/sgblkd@.service

contrib/systemd/sgblkd@.service: $(top_srcdir)/contrib/systemd/sgblkd@.service.in Makefile
	$(AM_V_GEN)mkdir -p contrib/systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	  $(top_srcdir)/contrib/systemd/sgblkd@.service.in >$@.tmp && mv $@.tmp $@

if HAVE_SYSTEMDUNITDIR
systemdsystemunit_DATA = \
	contrib/systemd/sgblkd@.service \
	$(top_srcdir)/contrib/systemd/sgblkd@.socket \
	$(top_srcdir)/contrib/systemd/sgblkd.socket
endif
# make distcheck installs under its own prefix.
AM_DISTCHECK_CONFIGURE_FLAGS = --with-systemdsystemunitdir='$${dc_install_base}/lib/systemd/system'
