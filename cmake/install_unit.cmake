# Run at install time (install(CODE) in CMakeLists.txt): installs
# deploy/hookd.service with its paths pointing where this install put the
# binary and the documentation, so `cmake --install build --prefix P` (and
# DESTDIR, which file(INSTALL) honours) gives a unit that runs as written.
# Inputs: HOOKD_UNIT_SRC, HOOKD_UNIT_OUT, HOOKD_BINDIR, HOOKD_DOCDIR.
file(READ "${HOOKD_UNIT_SRC}" unit)
string(REPLACE "/usr/local/bin/hookd" "${CMAKE_INSTALL_PREFIX}/${HOOKD_BINDIR}/hookd"
       unit "${unit}")
string(REPLACE "/usr/share/doc/hookd" "${CMAKE_INSTALL_PREFIX}/${HOOKD_DOCDIR}"
       unit "${unit}")
file(WRITE "${HOOKD_UNIT_OUT}" "${unit}")
file(INSTALL "${HOOKD_UNIT_OUT}" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
