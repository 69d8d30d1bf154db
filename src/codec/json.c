#include "codec/json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <lauxlib.h>
#include <lualib.h>

#include "engine/fileio.h"
#include "engine/text.h"
#include "luaglue/call.h"
#include "luaglue/cjson.h"
#include "codec/convert.h"


/* Registry key of the cjson table. */
static const char cjson_key[] = "esb.cjson";

/* cjson.decode for text that is UTF-8, as JSON text is (RFC 8259 8.1).
 * cjson takes any bytes in a string, and what a request names comes back
 * in its result (batch's id, a program name in a message): bytes that are
 * not UTF-8 would make that result no JSON. Nor a NUL byte, which JSON
 * text never holds (in a string it is "\u0000"): cjson ends the document
 * there, and would take '{"shell": "x"}' and ignore whatever follows.
 * Upvalue 1: cjson's decode. */
static int strict_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  size_t valid = esb_utf8_prefix(text, len);
  const char *nul = memchr(text, '\0', valid);
  if (nul)
    return luaL_error(L, "a NUL byte at byte %d", (int)(nul - text) + 1);
  if (valid < len)
    return luaL_error(L, "not UTF-8 at byte %d", (int)valid + 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int open_state(lua_State *L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, "cjson", luaopen_cjson, 0);  /* cjson */
  lua_getfield(L, -1, "decode");                 /* cjson, decode */
  lua_pushcclosure(L, strict_decode, 1);
  lua_setfield(L, -2, "decode");                 /* cjson */
  lua_setfield(L, LUA_REGISTRYINDEX, cjson_key);
  return 0;
}

lua_State *esb_json_state(void) {
  lua_State *L = luaL_newstate();
  if (!L)
    return NULL;
  struct esb_error err;
  lua_pushcfunction(L, open_state);
  if (esb_lua_pcall(L, 0, 0, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &err) < 0) {
    lua_close(L);
    return NULL;
  }
  return L;
}

void esb_json_field(lua_State *L, const char *name) {
  lua_pushstring(L, cjson_key);
  lua_rawget(L, LUA_REGISTRYINDEX);            /* cjson */
  lua_pushstring(L, name);
  lua_rawget(L, -2);                           /* cjson, cjson[name] */
  lua_remove(L, -2);                           /* cjson[name] */
}

int esb_json_decode(lua_State *L, const char *text, size_t len, struct esb_error *err) {
  esb_json_field(L, "decode");
  lua_pushlstring(L, text, len);
  return esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_INVALID_REQUEST, "invalid request JSON", err);
}

int esb_json_encode(lua_State *L, struct esb_error *err) {
  esb_json_field(L, "encode");
  lua_insert(L, -2);                           /* encode, value */
  return esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, "cannot encode JSON", err);
}

static int push_result(lua_State *L) {
  const struct esb_result *r = lua_touserdata(L, 1);
  esb_json_field(L, "null");
  esb_lua_push_result(L, r, lua_gettop(L));
  return 1;
}

int esb_json_push_result(lua_State *L, const struct esb_result *r) {
  lua_pushcfunction(L, push_result);
  lua_pushlightuserdata(L, (void *)r);
  struct esb_error err;
  return esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &err);
}

void esb_json_event_table(lua_State *L, const struct esb_json_event *ev) {
  if (ev->egress) {
    esb_lua_push_egress_attempt(L, ev->egress, false); /* event */
    lua_pushliteral(L, "egress");
    lua_setfield(L, -2, "event");
    return;
  }
  lua_createtable(L, 0, 4);                         /* event */
  if (ev->stream == 0) {
    lua_pushliteral(L, "truncated");
    lua_setfield(L, -2, "event");
    lua_pushinteger(L, (lua_Integer)ev->ceiling);
    lua_setfield(L, -2, "max_stream_bytes");
    return;
  }
  lua_pushliteral(L, "output");
  lua_setfield(L, -2, "event");
  lua_pushstring(L, ev->stream == 1 ? "stdout" : "stderr");
  lua_setfield(L, -2, "stream");
  if (ev->text) {
    lua_pushlstring(L, ev->data, ev->len);
    lua_setfield(L, -2, "data");
  } else {
    esb_lua_push_base64(L, ev->data, ev->len);
    lua_setfield(L, -2, "data_base64");
  }
}

/* Runs protected: the struct esb_json_event (1). */
static int push_event(lua_State *L) {
  esb_json_event_table(L, lua_touserdata(L, 1));
  return 1;
}

int esb_json_push_event(lua_State *L, const struct esb_json_event *ev) {
  lua_pushcfunction(L, push_event);
  lua_pushlightuserdata(L, (void *)ev);
  struct esb_error err;
  return esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &err);
}

struct languages {
  const struct esb_language *list;
  size_t n;
};

static int push_languages(lua_State *L) {
  const struct languages *l = lua_touserdata(L, 1);
  lua_createtable(L, 0, 1);                          /* answer */
  lua_createtable(L, (int)l->n, 0);                  /* answer, list */
  for (size_t i = 0; i < l->n; i++) {
    lua_createtable(L, 0, 3);                        /* answer, list, language */
    const char *fields[][2] = { { "name", l->list[i].name }, { "image", l->list[i].image },
                                { "file", l->list[i].file } };
    for (int f = 0; f < 3; f++) {
      if (fields[f][1]) {
        lua_pushstring(L, fields[f][1]);
        lua_setfield(L, -2, fields[f][0]);
      }
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);          /* answer, list */
  }
  lua_setfield(L, -2, "languages");                  /* answer */
  return 1;
}

int esb_json_push_languages(lua_State *L, const struct esb_language *list, size_t n) {
  struct languages l = { list, n };
  lua_pushcfunction(L, push_languages);
  lua_pushlightuserdata(L, &l);
  struct esb_error err;
  return esb_lua_pcall(L, 1, 1, ESB_LUA_MESSAGE, ESB_E_SYSTEM, NULL, &err);
}

void esb_json_print(lua_State *L) {
  struct esb_error err;
  if (esb_json_encode(L, &err) < 0) {
    fprintf(stderr, "echo-sandbox: %s\n", err.message);
    return;
  }
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  /* The line and its end in one system call where the kernel takes both. */
  struct iovec line[2] = { { (void *)s, len }, { "\n", 1 } };
  ssize_t n;
  do n = writev(1, line, 2); while (n < 0 && errno == EINTR);
  if (n >= 0 && (size_t)n < len + 1) {
    size_t done = (size_t)n;
    if (done < len)
      esb_write_all(1, s + done, len - done);
    esb_write_all(1, "\n", 1);
  }
  lua_pop(L, 1);
}
