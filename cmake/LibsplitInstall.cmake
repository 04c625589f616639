include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS libsplit EXPORT libsplitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/libsplit DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT libsplitTargets NAMESPACE libsplit:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/libsplit)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/libsplitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/libsplitConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/libsplit)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/libsplitConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/libsplitConfig.cmake ${PROJECT_BINARY_DIR}/libsplitConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/libsplit)
if(LIBSPLIT_BUILD_TOOLS)
  install(TARGETS split-client split-plan RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  if(LIBSPLIT_WITH_SERVER)
    install(TARGETS split-server RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endif()
# pkg-config, for builds without CMake: pkg-config --cflags --libs libsplit
configure_file(${PROJECT_SOURCE_DIR}/cmake/libsplit.pc.in ${PROJECT_BINARY_DIR}/libsplit.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/libsplit.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# split-train (Python, run with Debian's python3-torch): the command as `split-train` in bin/,
# the scripts it runs and their package under share/libsplit/tools.
install(PROGRAMS ${PROJECT_SOURCE_DIR}/tools/split-train.sh DESTINATION ${CMAKE_INSTALL_BINDIR} RENAME split-train)
install(PROGRAMS ${PROJECT_SOURCE_DIR}/tools/split_train.py ${PROJECT_SOURCE_DIR}/tools/calibrate_tables.py
                 ${PROJECT_SOURCE_DIR}/tools/torchscript_compat.py ${PROJECT_SOURCE_DIR}/tools/make_shapes_folder.py
                 ${PROJECT_SOURCE_DIR}/tools/make_fmnist_folder.py
  DESTINATION ${CMAKE_INSTALL_DATADIR}/libsplit/tools)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/tools/libsplit_tools DESTINATION ${CMAKE_INSTALL_DATADIR}/libsplit/tools
  FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
