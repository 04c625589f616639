# Cross toolchain for 64-bit Arm Linux (Jetson Nano, Raspberry Pi 3/4/5 with a 64-bit OS),
# with Debian's aarch64-linux-gnu-gcc (crossbuild-essential-arm64).
#
# LIBSPLIT_SYSROOT (cache variable or environment) is a directory holding the arm64 packages
# the build links against (LibTorch, spdlog, fmt, GoogleTest, zlib, ...), laid out as on an
# arm64 Debian system, header-only ones (Asio, nlohmann-json, CLI11) included:
# tools/cross-aarch64.sh makes one from Debian's arm64 packages.
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DLIBSPLIT_SYSROOT=/path/to/sysroot [-DLIBSPLIT_AARCH64_CPU=cortex-a72]
# or, per board, -DCMAKE_TOOLCHAIN_FILE=cmake/board-jetson-nano.cmake (board-rpi4, board-rpi5).
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

# The board's core, for the compiler's tuning and instruction choice: generic (armv8-a, runs on
# every 64-bit Arm board), cortex-a57 (Jetson Nano), cortex-a72 (Raspberry Pi 4), cortex-a76
# (Raspberry Pi 5). The board files (cmake/board-*.cmake) set it; never -march=native.
if(NOT LIBSPLIT_AARCH64_CPU)
  set(LIBSPLIT_AARCH64_CPU generic)
endif()
set(LIBSPLIT_AARCH64_CPU "${LIBSPLIT_AARCH64_CPU}" CACHE STRING "Target core: generic, cortex-a57, cortex-a72 or cortex-a76")
set_property(CACHE LIBSPLIT_AARCH64_CPU PROPERTY STRINGS generic cortex-a57 cortex-a72 cortex-a76)
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES LIBSPLIT_AARCH64_CPU)
if(LIBSPLIT_AARCH64_CPU STREQUAL "generic")
  set(_ls_cpu_flag "-march=armv8-a")
elseif(LIBSPLIT_AARCH64_CPU MATCHES "^cortex-a(57|72|76)$")
  set(_ls_cpu_flag "-mcpu=${LIBSPLIT_AARCH64_CPU}")
else()
  message(FATAL_ERROR "LIBSPLIT_AARCH64_CPU=${LIBSPLIT_AARCH64_CPU}: expected generic, cortex-a57, cortex-a72 or cortex-a76")
endif()
set(CMAKE_C_FLAGS_INIT "${_ls_cpu_flag}")
set(CMAKE_CXX_FLAGS_INIT "${_ls_cpu_flag}")

find_program(LIBSPLIT_QEMU_AARCH64 qemu-aarch64)
if(LIBSPLIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${LIBSPLIT_QEMU_AARCH64};-L;${LIBSPLIT_SYSROOT}")
endif()
