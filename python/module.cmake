# The Python package's extension module, panelboot._core (python/src/module.cpp), linking the same
# engine and command-line libraries as the executable. In a build tree it lands in
# build/python/panelboot/ beside copies of the package's Python files, so that the tests import
# the module this build made (PYTHONPATH=build/python); `pip install .` (scikit-build-core,
# pyproject.toml) installs it, and the CUDA plugin when it was built, into the wheel's panelboot/.
nanobind_add_module(pb_python NB_STATIC python/src/module.cpp)
set_target_properties(pb_python PROPERTIES OUTPUT_NAME _core
                      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/python/panelboot)
target_link_libraries(pb_python PRIVATE pb_cli)
file(GLOB PB_PYTHON_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/python/panelboot/*.py
     ${CMAKE_SOURCE_DIR}/python/panelboot/*.pyi ${CMAKE_SOURCE_DIR}/python/panelboot/py.typed)
set(PB_PYTHON_COPIES)
foreach(f ${PB_PYTHON_FILES})
  get_filename_component(name ${f} NAME)
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/python/panelboot/${name}
                     COMMAND ${CMAKE_COMMAND} -E copy_if_different ${f} ${CMAKE_BINARY_DIR}/python/panelboot/${name}
                     DEPENDS ${f})
  list(APPEND PB_PYTHON_COPIES ${CMAKE_BINARY_DIR}/python/panelboot/${name})
endforeach()
add_custom_target(pb_python_files ALL DEPENDS ${PB_PYTHON_COPIES})
add_dependencies(pb_python pb_python_files)
if(SKBUILD)
  install(TARGETS pb_python LIBRARY DESTINATION panelboot)
  if(PANELBOOT_HAVE_CUDA)
    install(TARGETS pb_cuda LIBRARY DESTINATION panelboot)
  endif()
endif()
