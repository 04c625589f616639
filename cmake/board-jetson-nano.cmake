# Cross toolchain for the Jetson Nano (4x Cortex-A57). JetPack 4.6 ships LibTorch 1.10, older than
# the 1.13 that exports bundles here: load a bundle with the board's LibTorch before deploying it.
# The generic aarch64 toolchain, tuned for the board's core (-mcpu=cortex-a57).
#   cmake -S . -B build/jetson-nano -DCMAKE_TOOLCHAIN_FILE=cmake/board-jetson-nano.cmake -DLIBSPLIT_SYSROOT=...
set(LIBSPLIT_AARCH64_CPU cortex-a57)
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)
