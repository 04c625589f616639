# Cross toolchain for the Raspberry Pi 4 (4x Cortex-A72), 64-bit Raspberry Pi OS or Debian.
# The generic aarch64 toolchain, tuned for the board's core (-mcpu=cortex-a72).
#   cmake -S . -B build/rpi4 -DCMAKE_TOOLCHAIN_FILE=cmake/board-rpi4.cmake -DLIBSPLIT_SYSROOT=...
set(LIBSPLIT_AARCH64_CPU cortex-a72)
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)
