# embed_lua.cmake -- build step: the Lua scripts in src/lua/ into C arrays.
#
# Run as cmake -P with LUA_DIR (src/lua), OUT_DIR (where the assembled
# scripts go), OUT_C, OUT_H and SCRIPTS (names, ';'-separated). For each
# script NAME: src/lua/NAME.lua, whose first line must be its shebang
# (#!lua ...), has every line "--!include FILE" replaced by
# src/lua/lib/FILE; lines that are only a comment are dropped (the scripts
# travel with every EVAL, the contracts stay in the source); the result is
# written to OUT_DIR/NAME.lua (what the script tests load, byte for byte
# what the binary sends) and embedded in OUT_C as
#   const char queue_lua_NAME[]   (NUL-terminated)
# declared in OUT_H. Nothing is read at run time.

set(c_text "/* Generated from src/lua/ by cmake/embed_lua.cmake; do not edit. */\n#include \"lua_scripts.h\"\n\n")
set(h_text "/* Generated from src/lua/ by cmake/embed_lua.cmake; do not edit. */\n#ifndef HOOKD_LUA_SCRIPTS_H\n#define HOOKD_LUA_SCRIPTS_H\n\n")
file(MAKE_DIRECTORY "${OUT_DIR}")

foreach(name IN LISTS SCRIPTS)
  file(READ "${LUA_DIR}/${name}.lua" text)
  if(NOT text MATCHES "^#!lua")
    message(FATAL_ERROR "${LUA_DIR}/${name}.lua: the first line must be the #!lua shebang")
  endif()
  string(REGEX MATCHALL "--!include [A-Za-z0-9_]+\\.lua" includes "${text}")
  foreach(directive IN LISTS includes)
    string(REPLACE "--!include " "" file "${directive}")
    if(NOT EXISTS "${LUA_DIR}/lib/${file}")
      message(FATAL_ERROR "${LUA_DIR}/${name}.lua: ${directive}: no ${LUA_DIR}/lib/${file}")
    endif()
    file(READ "${LUA_DIR}/lib/${file}" inc)
    string(REPLACE "${directive}" "${inc}" text "${text}")
  endforeach()
  if(text MATCHES "[^\t\n -~]")
    message(FATAL_ERROR "${LUA_DIR}/${name}.lua and its includes must be ASCII (write bytes as \\ddd)")
  endif()
  # Whole-line comments and blank lines out; the shebang stays first.
  string(REGEX REPLACE "\n[ \t]*--[^\n]*" "" text "${text}")
  string(REGEX REPLACE "\n([ \t]*\n)+" "\n" text "${text}")
  file(WRITE "${OUT_DIR}/${name}.lua.tmp" "${text}")
  file(READ "${OUT_DIR}/${name}.lua.tmp" hex HEX)
  file(RENAME "${OUT_DIR}/${name}.lua.tmp" "${OUT_DIR}/${name}.lua")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND c_text "const char queue_lua_${name}[] = {${bytes}0x00};\n")
  string(APPEND h_text "extern const char queue_lua_${name}[];\n")
endforeach()

string(APPEND h_text "\n#endif\n")
file(WRITE "${OUT_C}" "${c_text}")
file(WRITE "${OUT_H}" "${h_text}")
