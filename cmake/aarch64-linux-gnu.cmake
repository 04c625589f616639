# Cross toolchain for 64-bit Arm Linux (Jetson Nano, Raspberry Pi 3/4/5 with a 64-bit OS),
# with Debian's aarch64-linux-gnu-gcc (crossbuild-essential-arm64).
#
# LIBSPLIT_SYSROOT (cache variable or environment) is a directory holding the arm64 packages
# the build links against (LibTorch, spdlog, fmt, GoogleTest, zlib, ...), laid out as on an
# arm64 Debian system, header-only ones (Asio, nlohmann-json, CLI11) included:
# tools/cross-aarch64.sh makes one from Debian's arm64 packages.
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DLIBSPLIT_SYSROOT=/path/to/sysroot
#
# Executables run through qemu-aarch64 (qemu-user) when one is installed, so ctest and
# gtest_discover_tests work on an x86-64 build machine.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT LIBSPLIT_SYSROOT AND DEFINED ENV{LIBSPLIT_SYSROOT})
  set(LIBSPLIT_SYSROOT "$ENV{LIBSPLIT_SYSROOT}")
endif()
if(NOT LIBSPLIT_SYSROOT)
  message(FATAL_ERROR "aarch64 toolchain: set LIBSPLIT_SYSROOT to the arm64 package root (tools/cross-aarch64.sh makes one)")
endif()
if(NOT IS_DIRECTORY "${LIBSPLIT_SYSROOT}/usr/lib/aarch64-linux-gnu")
  message(FATAL_ERROR "aarch64 toolchain: LIBSPLIT_SYSROOT=${LIBSPLIT_SYSROOT} has no usr/lib/aarch64-linux-gnu")
endif()
set(LIBSPLIT_SYSROOT "${LIBSPLIT_SYSROOT}" CACHE PATH "Root of the arm64 packages to link against")
# try_compile projects see the variable too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES LIBSPLIT_SYSROOT)

# Libraries, headers and package configs from the sysroot only; programs (python3) from the host.
set(CMAKE_FIND_ROOT_PATH "${LIBSPLIT_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The cross compiler brings its own libc; the sysroot's libraries need each other at link time.
# (Some arm64 packages, gloo and armadillo among them, keep theirs in /usr/lib.)
set(_ls_rpath_link "")
foreach(dir usr/lib/aarch64-linux-gnu lib/aarch64-linux-gnu usr/lib)
  string(APPEND _ls_rpath_link " -Wl,-rpath-link,${LIBSPLIT_SYSROOT}/${dir}")
endforeach()
foreach(kind EXE SHARED MODULE)
  set(CMAKE_${kind}_LINKER_FLAGS_INIT "${_ls_rpath_link}")
endforeach()

find_program(LIBSPLIT_QEMU_AARCH64 qemu-aarch64)
if(LIBSPLIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${LIBSPLIT_QEMU_AARCH64};-L;${LIBSPLIT_SYSROOT}")
endif()
