# `cmake --install`: the libraries, the public headers and a CMake package,
# so that a C++ team builds its own writer and view binaries against freshet
# without its source tree:
#
#   find_package(freshet CONFIG REQUIRED)
#   target_link_libraries(my_app PRIVATE freshet::app)   # freshet/main.h
#
# freshet::writer and freshet::views are the two halves alone. Only the
# headers of the public surface are installed (see docs/library.md).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FRESHET_INSTALL_TARGETS freshet_core freshet_sql freshet_sources freshet_sinks freshet_writer freshet_views freshet_app)
foreach(target ${FRESHET_INSTALL_TARGETS})
  string(REPLACE "freshet_" "" export_name ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
endforeach()

install(TARGETS ${FRESHET_INSTALL_TARGETS} freshet
  EXPORT freshetTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(FRESHET_PUBLIC_HEADERS
  core/status.h core/envelope.h core/config.h core/named_registry.h core/json_text.h
  writer/decider.h writer/domain_registry.h
  sinks/table.h views/projection.h views/projection_registry.h)
foreach(header ${FRESHET_PUBLIC_HEADERS})
  get_filename_component(dir ${header} DIRECTORY)
  install(FILES ${FRESHET_ROOT}/${header} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/freshet/${dir})
endforeach()
install(FILES ${FRESHET_ROOT}/freshet/main.h ${CMAKE_BINARY_DIR}/generated/freshet/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/freshet)

install(EXPORT freshetTargets NAMESPACE freshet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/freshet)
configure_package_config_file(${FRESHET_ROOT}/cmake/freshetConfig.cmake.in
  ${CMAKE_BINARY_DIR}/freshetConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/freshet)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/freshetConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/freshetConfig.cmake ${CMAKE_BINARY_DIR}/freshetConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/freshet)

# pkg-config, for builds that do not use CMake.
configure_file(${FRESHET_ROOT}/cmake/freshet.pc.in ${CMAKE_BINARY_DIR}/freshet.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/freshet.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
