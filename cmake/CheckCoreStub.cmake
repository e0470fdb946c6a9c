# cmake -DGENERATED=<built _core.pyi> -DREFERENCE=<src/profilemate/_core.pyi> [-DPYTHON=<python>]
#       -P CheckCoreStub.cmake
# Fails (naming the command that refreshes the reference) when the stub generated from the built
# module differs from the committed one: the committed stub is the Python-facing API of _core, and
# `profilemate doctor` reads its function names.
foreach(var GENERATED REFERENCE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "CheckCoreStub.cmake: -D${var}=... is required")
  endif()
endforeach()

if(NOT EXISTS "${REFERENCE}")
  set(_why "the committed reference ${REFERENCE} does not exist")
else()
  execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files --ignore-eol "${GENERATED}"
                          "${REFERENCE}" RESULT_VARIABLE _differs)
  if(_differs EQUAL 0)
    return()
  endif()
  set(_why "the stub generated from the built module differs from ${REFERENCE}")
  if(PYTHON)
    # A short unified diff, so the log shows what drifted.
    execute_process(
      COMMAND
        "${PYTHON}" -c
        "import difflib, sys; a = open(sys.argv[1]).read().splitlines(); b = open(sys.argv[2]).read().splitlines(); d = list(difflib.unified_diff(a, b, 'committed ' + sys.argv[1], 'generated ' + sys.argv[2], lineterm='', n=1)); print('\\n'.join(d[:40] + (['... (%d more lines)' % (len(d) - 40)] if len(d) > 40 else [])))"
        "${REFERENCE}" "${GENERATED}")
  endif()
endif()
message(FATAL_ERROR
  "profilemate: ${_why} (the Python API of profilemate._core changed).\n"
  "If the change is intended, refresh the reference and commit it:\n"
  "    bash scripts/update-core-stub.sh\n"
  "(configure with -DPROFILEMATE_CHECK_STUB=OFF to build without this check)")
