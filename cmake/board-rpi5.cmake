# Cross toolchain for the Raspberry Pi 5 (4x Cortex-A76), 64-bit Raspberry Pi OS or Debian.
# The generic aarch64 toolchain, tuned for the board's core (-mcpu=cortex-a76).
#   cmake -S . -B build/rpi5 -DCMAKE_TOOLCHAIN_FILE=cmake/board-rpi5.cmake -DLIBSPLIT_SYSROOT=...
set(LIBSPLIT_AARCH64_CPU cortex-a76)
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)
