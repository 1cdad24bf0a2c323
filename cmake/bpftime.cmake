# bpftime.cmake: the one native build convention of every @bpftime package.
#
# Each package's native/CMakeLists.txt includes this file first. It sets the
# toolchain flags shared by all targets and gives these functions:
#
#   bpftime_use_package(<name>)   adds @bpftime/<name>'s native/ directory
#                                 once per build tree, located through Node's
#                                 module resolution from the calling package,
#                                 so it works in the workspace (pnpm links) and
#                                 in an installed node_modules tree alike.
#   bpftime_core_library(<name> [USES <package>...] [LIBS ...])
#                                 the static PIC library bpftime::<name> from
#                                 native/src, public headers in native/include;
#                                 it links the cores of the USES packages
#                                 (each added by bpftime_use_package), then LIBS.
#   bpftime_executable(<target> SOURCES ... [LIBS ...] [PRIVATE_HEADERS])
#                                 a native test or tool of the package, built
#                                 where its tests look for it.
#   bpftime_addon(<name> [LIBS ...])
#                                 the node-addon-api module from native/binding,
#                                 only when this package is the project that
#                                 cmake-js configures.
#
# In the workspace this file is cmake/bpftime.cmake at the repository root; a
# packed package carries a copy in its own cmake/ folder (see the packages'
# prepack script).
include_guard(GLOBAL)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
	set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

find_program(BPFTIME_CCACHE ccache)
if(BPFTIME_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
	set(CMAKE_CXX_COMPILER_LAUNCHER "${BPFTIME_CCACHE}")
	set(CMAKE_C_COMPILER_LAUNCHER "${BPFTIME_CCACHE}")
endif()

set(BPFTIME_WARNINGS -Wall -Wextra -Wno-unused-parameter
	-Wno-missing-field-initializers)

find_program(BPFTIME_NODE NAMES node nodejs REQUIRED)

# Directory of an installed or linked @bpftime/<name>, resolved from the
# package that calls this (its node_modules chain), or FATAL_ERROR.
function(bpftime_package_dir name out_var)
	execute_process(
		COMMAND "${BPFTIME_NODE}" -p
			"require('path').dirname(require.resolve('@bpftime/${name}/package.json'))"
		WORKING_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}"
		OUTPUT_VARIABLE dir
		ERROR_VARIABLE err
		RESULT_VARIABLE rc
		OUTPUT_STRIP_TRAILING_WHITESPACE)
	if(NOT rc EQUAL 0 OR NOT IS_DIRECTORY "${dir}/native")
		message(FATAL_ERROR
			"bpftime: cannot find the native sources of @bpftime/${name} "
			"from ${CMAKE_CURRENT_SOURCE_DIR}: is it in this package's "
			"dependencies and installed?\n${err}")
	endif()
	set(${out_var} "${dir}" PARENT_SCOPE)
endfunction()

# The core of package <name> is bpftime::<name> with '-' as '_'
# (maps-userspace -> bpftime::maps_userspace).
function(bpftime_use_package name)
	string(REPLACE "-" "_" core "${name}")
	if(TARGET bpftime::${core})
		return()
	endif()
	bpftime_package_dir(${name} dir)
	add_subdirectory("${dir}/native" "${CMAKE_BINARY_DIR}/bpftime-deps/${name}")
endfunction()

function(bpftime_core_library name)
	cmake_parse_arguments(ARG "" "" "USES;LIBS" ${ARGN})
	set(libs)
	foreach(pkg IN LISTS ARG_USES)
		bpftime_use_package(${pkg})
		string(REPLACE "-" "_" core "${pkg}")
		list(APPEND libs bpftime::${core})
	endforeach()
	set(ARG_LIBS ${libs} ${ARG_LIBS})
	file(GLOB_RECURSE srcs CONFIGURE_DEPENDS
		"${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp")
	add_library(bpftime_${name} STATIC ${srcs})
	add_library(bpftime::${name} ALIAS bpftime_${name})
	target_include_directories(bpftime_${name} PUBLIC
		"${CMAKE_CURRENT_SOURCE_DIR}/include")
	# A core's own headers are included by their path under src/
	# ("registry/registry_impl.hpp"), whichever folder includes them.
	target_include_directories(bpftime_${name} PRIVATE
		"${CMAKE_CURRENT_SOURCE_DIR}/src")
	target_compile_options(bpftime_${name} PRIVATE ${BPFTIME_WARNINGS})
	target_link_libraries(bpftime_${name} PUBLIC ${ARG_LIBS})
	bpftime_shared_core(${name} "${srcs}" "${ARG_LIBS}")
endfunction()

# A native test or tool of this package (built only where the caller says,
# usually under PROJECT_IS_TOP_LEVEL): <target> from SOURCES, linked with
# LIBS, compiled with the cores' warnings; PRIVATE_HEADERS lets it include the
# core's own headers under src/. Under cmake-js it lands next to the addon
# (build/<type>/), where the package's vitest tests run it.
function(bpftime_executable target)
	cmake_parse_arguments(ARG "PRIVATE_HEADERS" "" "SOURCES;LIBS" ${ARGN})
	add_executable(${target} ${ARG_SOURCES})
	target_link_libraries(${target} PRIVATE ${ARG_LIBS})
	if(ARG_PRIVATE_HEADERS)
		target_include_directories(${target} PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/src")
	endif()
	target_compile_options(${target} PRIVATE ${BPFTIME_WARNINGS})
	if(CMAKE_JS_VERSION)
		set_target_properties(${target} PROPERTIES
			RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/${CMAKE_BUILD_TYPE}")
	endif()
endfunction()

# Native topology of a Node process. Every package that has an addon also
# builds its core as a shared library, libbpftime_<name>.so, next to its
# addon; an addon links the shared cores of its own package and of every
# package below it, found in those packages' build folders. The dynamic
# loader then keeps one copy of each core per process, whichever addons
# were loaded and in which order (a later addon's DT_NEEDED matches the
# soname already loaded), so the process-wide tables of a core exist once:
# the open segments (shm maps a segment once per process), the map-ops
# registry and the helper table (a helper a map package registers reaches
# the programs the handlers addon runs).
#
# The static libraries stay: the agent and the syscall-server are loaded
# into other programs and link the cores statically with nothing exported,
# and the native tests link them too.
#
# In a package's own build (cmake-js, top level) bpftime_shared_core builds
# the library; in a dependency's subdirectory it declares the library that
# the dependency's own build has made as an imported target. Packages are
# built in dependency order (turbo's ^build, npm install scripts), so it is
# there when an addon links it.
function(bpftime_shared_core name srcs libs)
	if(NOT CMAKE_JS_VERSION OR NOT EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/binding")
		return()
	endif()
	bpftime_shared_libs(shared_libs ${libs})
	if(PROJECT_IS_TOP_LEVEL)
		add_library(bpftime_${name}_shared SHARED ${srcs})
		set_target_properties(bpftime_${name}_shared PROPERTIES
			OUTPUT_NAME bpftime_${name}
			LIBRARY_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/${CMAKE_BUILD_TYPE}")
		target_include_directories(bpftime_${name}_shared PUBLIC
			"${CMAKE_CURRENT_SOURCE_DIR}/include")
		target_include_directories(bpftime_${name}_shared PRIVATE
			"${CMAKE_CURRENT_SOURCE_DIR}/src")
		target_compile_options(bpftime_${name}_shared PRIVATE ${BPFTIME_WARNINGS})
		target_link_libraries(bpftime_${name}_shared PUBLIC ${shared_libs})
		target_link_options(bpftime_${name}_shared PRIVATE "LINKER:--no-undefined")
		bpftime_relative_runpath(bpftime_${name}_shared)
	else()
		get_filename_component(pkg "${CMAKE_CURRENT_SOURCE_DIR}" DIRECTORY)
		set(file "${pkg}/build/${CMAKE_BUILD_TYPE}/libbpftime_${name}.so")
		add_library(bpftime_${name}_shared SHARED IMPORTED GLOBAL)
		set_target_properties(bpftime_${name}_shared PROPERTIES
			IMPORTED_LOCATION "${file}"
			IMPORTED_SONAME "libbpftime_${name}.so"
			INTERFACE_INCLUDE_DIRECTORIES "${CMAKE_CURRENT_SOURCE_DIR}/include"
			INTERFACE_LINK_LIBRARIES "${shared_libs}")
		set_property(GLOBAL APPEND PROPERTY BPFTIME_IMPORTED_CORES "${file}")
	endif()
endfunction()

# The run path of an addon or shared core: its own folder and the build
# folders of the packages below it, relative to itself ($ORIGIN/../../../
# <package>/build/<type>: packages are siblings in the workspace's packages/
# and in node_modules/@bpftime/, pnpm's store included), never absolute, so
# a build that turbo restores from its cache into another checkout, or a
# package tree that moves, still finds them.
function(bpftime_relative_runpath target)
	set(rpath "$ORIGIN")
	get_property(imported GLOBAL PROPERTY BPFTIME_IMPORTED_CORES)
	foreach(file IN LISTS imported)
		# file: <package>/build/<type>/libbpftime_<name>.so
		get_filename_component(dir "${file}" DIRECTORY)
		get_filename_component(dir "${dir}" DIRECTORY)
		get_filename_component(dir "${dir}" DIRECTORY)
		get_filename_component(pkg "${dir}" NAME)
		list(APPEND rpath "$ORIGIN/../../../${pkg}/build/${CMAKE_BUILD_TYPE}")
	endforeach()
	list(REMOVE_DUPLICATES rpath)
	set_target_properties(${target} PROPERTIES
		BUILD_WITH_INSTALL_RPATH ON
		INSTALL_RPATH "${rpath}")
endfunction()

# libs with every bpftime::<core> that has a shared library replaced by it.
function(bpftime_shared_libs out_var)
	set(result)
	foreach(lib IN LISTS ARGN)
		# Two steps: CMAKE_MATCH_1 is expanded before MATCHES sets it
		# when both stand in one condition.
		set(core "")
		if(lib MATCHES "^bpftime::(.+)$")
			set(core "${CMAKE_MATCH_1}")
		endif()
		if(core AND TARGET bpftime_${core}_shared)
			list(APPEND result bpftime_${core}_shared)
		else()
			list(APPEND result ${lib})
		endif()
	endforeach()
	set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

# The addon is built only when cmake-js configures this very package; as a
# dependency of another package only the core library is wanted.
function(bpftime_addon name)
	cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
	if(NOT CMAKE_JS_VERSION OR NOT PROJECT_IS_TOP_LEVEL)
		return()
	endif()
	bpftime_use_package(common)
	file(GLOB srcs CONFIGURE_DEPENDS
		"${CMAKE_CURRENT_SOURCE_DIR}/binding/*.cpp")
	add_library(bpftime_${name}_addon SHARED ${srcs} ${CMAKE_JS_SRC})
	set_target_properties(bpftime_${name}_addon PROPERTIES
		PREFIX "" SUFFIX ".node" OUTPUT_NAME "bpftime_${name}"
		CXX_VISIBILITY_PRESET hidden)
	target_include_directories(bpftime_${name}_addon PRIVATE
		${CMAKE_JS_INC})
	target_compile_definitions(bpftime_${name}_addon PRIVATE
		NAPI_VERSION=8 NODE_ADDON_API_DISABLE_DEPRECATED
		NODE_ADDON_API_CPP_EXCEPTIONS)
	target_compile_options(bpftime_${name}_addon PRIVATE ${BPFTIME_WARNINGS})
	bpftime_shared_libs(libs ${ARG_LIBS})
	target_link_libraries(bpftime_${name}_addon PRIVATE
		bpftime::napi ${libs} ${CMAKE_JS_LIB})
	bpftime_relative_runpath(bpftime_${name}_addon)
	# The shared cores of the packages below this one are their builds'
	# outputs: say which one is missing rather than fail at link time.
	get_property(imported GLOBAL PROPERTY BPFTIME_IMPORTED_CORES)
	foreach(file IN LISTS imported)
		if(NOT EXISTS "${file}")
			message(FATAL_ERROR "bpftime: ${file} is not built: the "
				"packages this one depends on are built first (in the "
				"workspace `pnpm build` builds every package in order)")
		endif()
	endforeach()
endfunction()
