// ecryptfs_native: the agent's only native code. Thin, audited wrappers over
// system calls Node does not expose (kernel keyring, mount, credentials,
// prctl/rlimit, mlock, flock, syslog) plus the eCryptfs KDF hot loop.
// No business logic lives here: argument checks, one call, errno → JS Error.
//
// Every failure throws a JS Error with .errno (number), .code (errno name,
// e.g. 'ENOKEY') and .syscall (the call that failed). Type errors in
// arguments throw a TypeError with code 'EINVAL_ARG'.
//
// Built with NAPI_DISABLE_CPP_EXCEPTIONS: every throw is followed by return.

#include <napi.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/keyctl.h>

// OpenSSL comes from Node's own exported symbols (headers in
// /usr/include/node/openssl): no -lcrypto, so only one OpenSSL is in-process.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <string>
#include <vector>

namespace {

// ---------------------------------------------------------------- errors

Napi::Value ThrowErrno(Napi::Env env, const char* syscall_name, int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  std::string code = name ? name : ("E" + std::to_string(err));
  Napi::Error e = Napi::Error::New(env, std::string(syscall_name) + ": " + strerror(err) + " (" + code + ")");
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, syscall_name));
  e.ThrowAsJavaScriptException();
  return env.Null();
}

Napi::Value ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "EINVAL_ARG"));
  e.ThrowAsJavaScriptException();
  return env.Null();
}

// ------------------------------------------------------- argument checks
// Each returns false after throwing; callers `return env.Null()`.

bool ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t* out) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    ThrowType(info.Env(), std::string(what) + " must be a number");
    return false;
  }
  double d = info[i].As<Napi::Number>().DoubleValue();
  // Range check first: casting NaN/inf/huge doubles to int64 is undefined.
  if (!(d >= -9007199254740991.0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
    ThrowType(info.Env(), std::string(what) + " must be an integer");
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool ArgInt32(const Napi::CallbackInfo& info, size_t i, const char* what, int32_t* out) {
  int64_t v;
  if (!ArgInt(info, i, what, &v)) return false;
  if (v < INT32_MIN || v > INT32_MAX) {
    ThrowType(info.Env(), std::string(what) + " out of range");
    return false;
  }
  *out = static_cast<int32_t>(v);
  return true;
}

// uid_t/gid_t: 0..2^32-2, or -1 meaning "unchanged" where the call allows it.
bool ArgId(const Napi::CallbackInfo& info, size_t i, const char* what, bool allow_minus1, uint32_t* out) {
  int64_t v;
  if (!ArgInt(info, i, what, &v)) return false;
  if (allow_minus1 && v == -1) {
    *out = static_cast<uint32_t>(-1);
    return true;
  }
  if (v < 0 || v >= 0xffffffffLL) {
    ThrowType(info.Env(), std::string(what) + " is not a valid id");
    return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

// Strings must not contain NUL: C would silently truncate them.
bool ArgStr(const Napi::CallbackInfo& info, size_t i, const char* what, std::string* out) {
  if (i >= info.Length() || !info[i].IsString()) {
    ThrowType(info.Env(), std::string(what) + " must be a string");
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) {
    ThrowType(info.Env(), std::string(what) + " must not contain NUL");
    return false;
  }
  return true;
}

// string or null/undefined → *is_null
bool ArgStrOrNull(const Napi::CallbackInfo& info, size_t i, const char* what, std::string* out, bool* is_null) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) {
    *is_null = true;
    return true;
  }
  *is_null = false;
  return ArgStr(info, i, what, out);
}

bool ArgBuf(const Napi::CallbackInfo& info, size_t i, const char* what, Napi::Buffer<uint8_t>* out) {
  if (i >= info.Length() || !info[i].IsBuffer()) {
    ThrowType(info.Env(), std::string(what) + " must be a Buffer");
    return false;
  }
  *out = info[i].As<Napi::Buffer<uint8_t>>();
  return true;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* what, bool* out) {
  if (i >= info.Length() || !info[i].IsBoolean()) {
    ThrowType(info.Env(), std::string(what) + " must be a boolean");
    return false;
  }
  *out = info[i].As<Napi::Boolean>().Value();
  return true;
}

// ------------------------------------------------------------- keyring
// Raw syscalls (no libkeyutils): key_serial_t is int32; KEY_SPEC_* are negative.

long Keyctl(int op, unsigned long a2, unsigned long a3 = 0, unsigned long a4 = 0, unsigned long a5 = 0) {
  return syscall(SYS_keyctl, op, a2, a3, a4, a5);
}

Napi::Value AddKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string type, desc;
  Napi::Buffer<uint8_t> payload;
  int32_t ring;
  if (!ArgStr(info, 0, "type", &type) || !ArgStr(info, 1, "description", &desc) ||
      !ArgBuf(info, 2, "payload", &payload) || !ArgInt32(info, 3, "keyring", &ring))
    return env.Null();
  long id = syscall(SYS_add_key, type.c_str(), desc.c_str(), payload.Length() ? payload.Data() : nullptr,
                    payload.Length(), ring);
  if (id < 0) return ThrowErrno(env, "add_key", errno);
  return Napi::Number::New(env, static_cast<double>(id));
}

Napi::Value KeyctlSearch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t ring, dest = 0;
  std::string type, desc;
  if (!ArgInt32(info, 0, "keyring", &ring) || !ArgStr(info, 1, "type", &type) ||
      !ArgStr(info, 2, "description", &desc))
    return env.Null();
  if (info.Length() > 3 && !info[3].IsUndefined() && !ArgInt32(info, 3, "destKeyring", &dest)) return env.Null();
  long id = Keyctl(KEYCTL_SEARCH, static_cast<unsigned long>(ring), reinterpret_cast<unsigned long>(type.c_str()),
                   reinterpret_cast<unsigned long>(desc.c_str()), static_cast<unsigned long>(dest));
  if (id < 0) return ThrowErrno(env, "keyctl_search", errno);
  return Napi::Number::New(env, static_cast<double>(id));
}

// KEYCTL_READ / KEYCTL_DESCRIBE both return the full size even when the buffer
// is short; loop until the buffer was big enough (the key may change between calls).
bool ReadLoop(int op, int32_t id, std::vector<uint8_t>* buf, long* len) {
  buf->assign(64, 0);
  for (;;) {
    long n = Keyctl(op, static_cast<unsigned long>(id), reinterpret_cast<unsigned long>(buf->data()), buf->size());
    if (n < 0) return false;
    if (static_cast<size_t>(n) <= buf->size()) {
      *len = n;
      return true;
    }
    OPENSSL_cleanse(buf->data(), buf->size());
    buf->assign(static_cast<size_t>(n), 0);
  }
}

Napi::Value KeyctlRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t id;
  if (!ArgInt32(info, 0, "id", &id)) return env.Null();
  std::vector<uint8_t> buf;
  long n;
  if (!ReadLoop(KEYCTL_READ, id, &buf, &n)) return ThrowErrno(env, "keyctl_read", errno);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n));
  OPENSSL_cleanse(buf.data(), buf.size());  // payloads are secrets (auth toks)
  return out;
}

Napi::Value KeyctlDescribe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t id;
  if (!ArgInt32(info, 0, "id", &id)) return env.Null();
  std::vector<uint8_t> buf;
  long n;
  if (!ReadLoop(KEYCTL_DESCRIBE, id, &buf, &n)) return ThrowErrno(env, "keyctl_describe", errno);
  // Result is "type;uid;gid;perm;description" with a trailing NUL.
  size_t len = static_cast<size_t>(n);
  if (len > 0 && buf[len - 1] == 0) len--;
  return Napi::String::New(env, reinterpret_cast<const char*>(buf.data()), len);
}

// Two-argument keyctl operations that return 0 or -1.
Napi::Value Keyctl2(const Napi::CallbackInfo& info, int op, const char* name, const char* a, const char* b) {
  Napi::Env env = info.Env();
  int32_t x, y;
  if (!ArgInt32(info, 0, a, &x) || !ArgInt32(info, 1, b, &y)) return env.Null();
  if (Keyctl(op, static_cast<unsigned long>(x), static_cast<unsigned long>(y)) < 0) return ThrowErrno(env, name, errno);
  return env.Undefined();
}

Napi::Value KeyctlLink(const Napi::CallbackInfo& info) { return Keyctl2(info, KEYCTL_LINK, "keyctl_link", "id", "keyring"); }
Napi::Value KeyctlUnlink(const Napi::CallbackInfo& info) {
  return Keyctl2(info, KEYCTL_UNLINK, "keyctl_unlink", "id", "keyring");
}

Napi::Value KeyctlSetTimeout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t id;
  int64_t secs;
  if (!ArgInt32(info, 0, "id", &id) || !ArgInt(info, 1, "seconds", &secs)) return env.Null();
  if (secs < 0 || secs > UINT32_MAX) return ThrowType(env, "seconds out of range");
  if (Keyctl(KEYCTL_SET_TIMEOUT, static_cast<unsigned long>(id), static_cast<unsigned long>(secs)) < 0)
    return ThrowErrno(env, "keyctl_set_timeout", errno);
  return env.Undefined();
}

Napi::Value Keyctl1(const Napi::CallbackInfo& info, int op, const char* name) {
  Napi::Env env = info.Env();
  int32_t id;
  if (!ArgInt32(info, 0, "id", &id)) return env.Null();
  if (Keyctl(op, static_cast<unsigned long>(id)) < 0) return ThrowErrno(env, name, errno);
  return env.Undefined();
}
Napi::Value KeyctlRevoke(const Napi::CallbackInfo& info) { return Keyctl1(info, KEYCTL_REVOKE, "keyctl_revoke"); }
Napi::Value KeyctlInvalidate(const Napi::CallbackInfo& info) {
  return Keyctl1(info, KEYCTL_INVALIDATE, "keyctl_invalidate");
}

Napi::Value KeyctlGetKeyringId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t spec;
  bool create;
  if (!ArgInt32(info, 0, "spec", &spec) || !ArgBool(info, 1, "create", &create)) return env.Null();
  long id = Keyctl(KEYCTL_GET_KEYRING_ID, static_cast<unsigned long>(spec), create ? 1 : 0);
  if (id < 0) return ThrowErrno(env, "keyctl_get_keyring_ID", errno);
  return Napi::Number::New(env, static_cast<double>(id));
}

Napi::Value KeyctlJoinSessionKeyring(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  bool is_null;
  if (!ArgStrOrNull(info, 0, "name", &name, &is_null)) return env.Null();
  long id = Keyctl(KEYCTL_JOIN_SESSION_KEYRING, is_null ? 0UL : reinterpret_cast<unsigned long>(name.c_str()));
  if (id < 0) return ThrowErrno(env, "keyctl_join_session_keyring", errno);
  return Napi::Number::New(env, static_cast<double>(id));
}

// --------------------------------------------------------------- mount

Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string source, target, fstype, data;
  bool no_source, no_fstype, no_data;
  int64_t flags;
  if (!ArgStrOrNull(info, 0, "source", &source, &no_source) || !ArgStr(info, 1, "target", &target) ||
      !ArgStrOrNull(info, 2, "fstype", &fstype, &no_fstype) || !ArgInt(info, 3, "flags", &flags) ||
      !ArgStrOrNull(info, 4, "data", &data, &no_data))
    return env.Null();
  if (flags < 0 || flags > UINT32_MAX) return ThrowType(env, "flags out of range");
  if (mount(no_source ? nullptr : source.c_str(), target.c_str(), no_fstype ? nullptr : fstype.c_str(),
            static_cast<unsigned long>(flags), no_data ? nullptr : data.c_str()) != 0)
    return ThrowErrno(env, "mount", errno);
  return env.Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string target;
  int32_t flags;
  if (!ArgStr(info, 0, "target", &target) || !ArgInt32(info, 1, "flags", &flags)) return env.Null();
  if (umount2(target.c_str(), flags) != 0) return ThrowErrno(env, "umount2", errno);
  return env.Undefined();
}

// --------------------------------------------------------- credentials
// set*id/setgroups MUST go through the glibc wrappers, never syscall():
// on Linux credentials are per-thread, and Node runs libuv/V8 worker threads.
// glibc's wrappers broadcast the change to every thread of the process
// (the nptl "setxid" signal), so no thread keeps stale root or user ids.

Napi::Value SetResUid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t r, e, s;
  if (!ArgId(info, 0, "ruid", true, &r) || !ArgId(info, 1, "euid", true, &e) || !ArgId(info, 2, "suid", true, &s))
    return env.Null();
  if (setresuid(r, e, s) != 0) return ThrowErrno(env, "setresuid", errno);
  return env.Undefined();
}

Napi::Value SetResGid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t r, e, s;
  if (!ArgId(info, 0, "rgid", true, &r) || !ArgId(info, 1, "egid", true, &e) || !ArgId(info, 2, "sgid", true, &s))
    return env.Null();
  if (setresgid(r, e, s) != 0) return ThrowErrno(env, "setresgid", errno);
  return env.Undefined();
}

Napi::Value GetResUid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uid_t r, e, s;
  if (getresuid(&r, &e, &s) != 0) return ThrowErrno(env, "getresuid", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ruid", Napi::Number::New(env, r));
  o.Set("euid", Napi::Number::New(env, e));
  o.Set("suid", Napi::Number::New(env, s));
  return o;
}

Napi::Value GetResGid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gid_t r, e, s;
  if (getresgid(&r, &e, &s) != 0) return ThrowErrno(env, "getresgid", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rgid", Napi::Number::New(env, r));
  o.Set("egid", Napi::Number::New(env, e));
  o.Set("sgid", Napi::Number::New(env, s));
  return o;
}

Napi::Value GidArray(Napi::Env env, const std::vector<gid_t>& g) {
  Napi::Array a = Napi::Array::New(env, g.size());
  for (size_t i = 0; i < g.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, g[i]));
  return a;
}

Napi::Value SetGroups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) return ThrowType(env, "groups must be an array");
  Napi::Array a = info[0].As<Napi::Array>();
  if (a.Length() > 65536) return ThrowType(env, "too many groups");
  std::vector<gid_t> g(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) return ThrowType(env, "groups must be numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d < 4294967295.0) || d != static_cast<double>(static_cast<int64_t>(d)))
      return ThrowType(env, "group is not a valid id");
    g[i] = static_cast<gid_t>(d);
  }
  if (setgroups(g.size(), g.empty() ? nullptr : g.data()) != 0) return ThrowErrno(env, "setgroups", errno);
  return env.Undefined();
}

Napi::Value GetGroups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n = getgroups(0, nullptr);
  if (n < 0) return ThrowErrno(env, "getgroups", errno);
  std::vector<gid_t> g(static_cast<size_t>(n));
  n = getgroups(n, g.data());
  if (n < 0) return ThrowErrno(env, "getgroups", errno);
  g.resize(static_cast<size_t>(n));
  return GidArray(env, g);
}

Napi::Value GetGroupList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string user;
  uint32_t gid;
  if (!ArgStr(info, 0, "user", &user) || !ArgId(info, 1, "gid", false, &gid)) return env.Null();
  int n = 32;
  std::vector<gid_t> g;
  for (int tries = 0; tries < 8; tries++) {
    g.assign(static_cast<size_t>(n), 0);
    int want = n;
    if (getgrouplist(user.c_str(), gid, g.data(), &want) >= 0) {
      g.resize(static_cast<size_t>(want));
      return GidArray(env, g);
    }
    if (want <= n) want = n * 2;  // glibc updates want; be defensive
    n = want;
  }
  return ThrowErrno(env, "getgrouplist", ERANGE);
}

Napi::Value PasswdObject(Napi::Env env, const struct passwd* pw) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", Napi::String::New(env, pw->pw_name));
  o.Set("uid", Napi::Number::New(env, pw->pw_uid));
  o.Set("gid", Napi::Number::New(env, pw->pw_gid));
  o.Set("dir", Napi::String::New(env, pw->pw_dir ? pw->pw_dir : ""));
  o.Set("shell", Napi::String::New(env, pw->pw_shell ? pw->pw_shell : ""));
  return o;
}

// getpw*_r: reentrant (no static buffer shared with other callers); retry on ERANGE.
template <typename F>
Napi::Value GetPw(Napi::Env env, const char* name, F call) {
  long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
  size_t size = sz > 0 ? static_cast<size_t>(sz) : 16384;
  for (int tries = 0; tries < 8; tries++) {
    std::vector<char> buf(size);
    struct passwd pw, *res = nullptr;
    int rc = call(&pw, buf.data(), buf.size(), &res);
    if (rc == ERANGE) {
      size *= 2;
      continue;
    }
    // "not found" is rc 0 with res NULL; some NSS modules report ENOENT/ESRCH.
    if (rc == 0 || rc == ENOENT || rc == ESRCH) return res ? PasswdObject(env, res) : env.Null();
    return ThrowErrno(env, name, rc);
  }
  return ThrowErrno(env, name, ERANGE);
}

Napi::Value GetPwNam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ArgStr(info, 0, "name", &name)) return env.Null();
  return GetPw(env, "getpwnam_r", [&](struct passwd* pw, char* b, size_t n, struct passwd** r) {
    return getpwnam_r(name.c_str(), pw, b, n, r);
  });
}

Napi::Value GetPwUid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t uid;
  if (!ArgId(info, 0, "uid", false, &uid)) return env.Null();
  return GetPw(env, "getpwuid_r",
               [&](struct passwd* pw, char* b, size_t n, struct passwd** r) { return getpwuid_r(uid, pw, b, n, r); });
}

// ------------------------------------------------------ process hardening

Napi::Value PrctlSetDumpable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool on;
  if (!ArgBool(info, 0, "dumpable", &on)) return env.Null();
  if (prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0) != 0) return ThrowErrno(env, "prctl", errno);
  return env.Undefined();
}

Napi::Value PrctlGetDumpable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int r = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (r < 0) return ThrowErrno(env, "prctl", errno);
  return Napi::Number::New(env, r);
}

Napi::Value SetRlimitCoreZero(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct rlimit rl = {0, 0};
  if (setrlimit(RLIMIT_CORE, &rl) != 0) return ThrowErrno(env, "setrlimit", errno);
  return env.Undefined();
}

Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd, op;
  if (!ArgInt32(info, 0, "fd", &fd) || !ArgInt32(info, 1, "op", &op)) return env.Null();
  if (flock(fd, op) != 0) return ThrowErrno(env, "flock", errno);
  return env.Undefined();
}

// ---------------------------------------------------------------- syslog
// openlog keeps the ident pointer, so it must outlive the call: static storage.
std::string g_ident;

Napi::Value Syslog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ident, msg;
  int32_t pri;
  if (!ArgStr(info, 0, "ident", &ident) || !ArgInt32(info, 1, "priority", &pri) || !ArgStr(info, 2, "message", &msg))
    return env.Null();
  if (pri < 0 || pri > 0x3ff) return ThrowType(env, "priority out of range");
  if (ident != g_ident) {
    closelog();
    g_ident = ident;
    openlog(g_ident.c_str(), LOG_PID, LOG_AUTHPRIV);
  }
  syslog(pri, "%s", msg.c_str());  // never the message as the format
  return env.Undefined();
}

// ------------------------------------------------- process state (what a setuid caller hands down)
// What a setuid caller (su, passwd) hands down must not steer the agent: limits, priority,
// memory locking, and the per-thread fs ids used around mount(2).

// Memory for secrets: each Buffer gets pages of its own (mmap), locked in RAM (mlock, best
// effort: the errno is kept), left out of core dumps (MADV_DONTDUMP), and wiped, unlocked and
// unmapped when V8 collects the Buffer (or at exit). Not mlockall: V8 aborts when it madvises
// or re-protects pages of its own heap that mlockall locked (seen on Node 20, at GC and exit).
struct SecretRegion {
  void* addr;
  size_t len;
};

void FreeSecret(Napi::Env /*env*/, uint8_t* /*data*/, SecretRegion* r) {
  OPENSSL_cleanse(r->addr, r->len);
  munlock(r->addr, r->len);
  munmap(r->addr, r->len);
  delete r;
}

Napi::Value SecretBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t size;
  if (!ArgInt(info, 0, "size", &size)) return env.Null();
  if (size < 0 || size > (1 << 24)) return ThrowType(env, "size must be in 0..16777216");
  long page = sysconf(_SC_PAGESIZE);
  size_t len = ((static_cast<size_t>(size) + static_cast<size_t>(page) - 1) / static_cast<size_t>(page)) * static_cast<size_t>(page);
  if (len == 0) len = static_cast<size_t>(page);
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (addr == MAP_FAILED) return ThrowErrno(env, "mmap", errno);
  int lock_errno = mlock(addr, len) == 0 ? 0 : errno;
  (void)madvise(addr, len, MADV_DONTDUMP);
  SecretRegion* r = new SecretRegion{addr, len};
  Napi::Buffer<uint8_t> b = Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(addr), static_cast<size_t>(size), FreeSecret, r);
  b.Set("mlockErrno", Napi::Number::New(env, lock_errno));
  return b;
}

// -1 (or any negative number) means RLIM_INFINITY.
bool ArgRlim(const Napi::CallbackInfo& info, size_t i, const char* what, rlim_t* out) {
  int64_t v;
  if (!ArgInt(info, i, what, &v)) return false;
  *out = v < 0 ? RLIM_INFINITY : static_cast<rlim_t>(v);
  return true;
}

Napi::Value SetRlimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t resource;
  struct rlimit rl;
  if (!ArgInt32(info, 0, "resource", &resource) || !ArgRlim(info, 1, "soft", &rl.rlim_cur) ||
      !ArgRlim(info, 2, "hard", &rl.rlim_max))
    return env.Null();
  if (setrlimit(static_cast<__rlimit_resource>(resource), &rl) != 0) return ThrowErrno(env, "setrlimit", errno);
  return env.Undefined();
}

Napi::Value RlimNumber(Napi::Env env, rlim_t v) {
  return Napi::Number::New(env, v == RLIM_INFINITY ? -1.0 : static_cast<double>(v));
}

Napi::Value GetRlimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t resource;
  struct rlimit rl;
  if (!ArgInt32(info, 0, "resource", &resource)) return env.Null();
  if (getrlimit(static_cast<__rlimit_resource>(resource), &rl) != 0) return ThrowErrno(env, "getrlimit", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("soft", RlimNumber(env, rl.rlim_cur));
  o.Set("hard", RlimNumber(env, rl.rlim_max));
  return o;
}

// setpriority(PRIO_PROCESS, 0, prio): the calling process (every thread: Linux applies
// PRIO_PROCESS with who=0 to the caller's thread only, so callers pass each tid they care about).
Napi::Value SetPriority(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t which, who, prio;
  if (!ArgInt32(info, 0, "which", &which) || !ArgInt32(info, 1, "who", &who) || !ArgInt32(info, 2, "prio", &prio))
    return env.Null();
  if (setpriority(static_cast<__priority_which_t>(which), static_cast<id_t>(who), prio) != 0)
    return ThrowErrno(env, "setpriority", errno);
  return env.Undefined();
}

// setfsuid/setfsgid: per thread (glibc does not broadcast them), return the previous id. The
// kernel reports no error; the caller reads the id back with a second call to check.
Napi::Value SetFsUid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  if (!ArgId(info, 0, "fsuid", true, &id)) return env.Null();
  return Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(setfsuid(id))));
}

Napi::Value SetFsGid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id;
  if (!ArgId(info, 0, "fsgid", true, &id)) return env.Null();
  return Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(setfsgid(id))));
}

// The serial of a user's keyring (@u, created when missing), without this process ever taking the
// user's real uid: KEY_SPEC_USER_KEYRING is chosen by the real uid, and a root agent whose real
// uid were the user's could be signalled (killed, stopped) by that user. A child made with
// clone(CLONE_VM|CLONE_VFORK) takes the user's ids and asks; it shares our memory, so it runs raw
// system calls only and _exits, while the calling thread waits. The user can only kill that
// child (then: an error here, nothing changed).
struct KeyringIdArgs {
  uid_t uid;
  gid_t gid;
  long serial;
  int err;
};

int KeyringIdChild(void* p) {
  KeyringIdArgs* a = static_cast<KeyringIdArgs*>(p);
  if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, a->gid, a->gid, a->gid) != 0 ||
      syscall(SYS_setresuid, a->uid, a->uid, a->uid) != 0) {
    a->err = errno;
    syscall(SYS_exit, 1);
  }
  long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1);
  a->serial = id;
  a->err = id < 0 ? errno : 0;
  syscall(SYS_exit, 0);
  return 0;
}

Napi::Value UserKeyringId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t uid, gid;
  if (!ArgId(info, 0, "uid", false, &uid) || !ArgId(info, 1, "gid", false, &gid)) return env.Null();
  const size_t stack_len = 64 * 1024;
  void* stack = mmap(nullptr, stack_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return ThrowErrno(env, "mmap", errno);
  KeyringIdArgs args{uid, gid, -1, EIO};
  // no exit signal (libuv's SIGCHLD handler knows only its own children): reaped with __WALL
  pid_t pid = clone(KeyringIdChild, static_cast<char*>(stack) + stack_len, CLONE_VM | CLONE_VFORK, &args);
  int clone_errno = errno;
  if (pid > 0) {
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
    }
  }
  munmap(stack, stack_len);
  if (pid < 0) return ThrowErrno(env, "clone", clone_errno);
  if (args.serial < 0) return ThrowErrno(env, "keyctl_get_keyring_ID", args.err != 0 ? args.err : EIO);
  return Napi::Number::New(env, static_cast<double>(args.serial));
}

// ------------------------------------------------------------------- KDF
// eCryptfs key derivation hot loop: buf = SHA512(first), then rounds-1 times
// buf = SHA512(buf). Intermediate digests are cleansed.
Napi::Value Sha512Iterate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> first;
  int64_t rounds;
  if (!ArgBuf(info, 0, "first", &first) || !ArgInt(info, 1, "rounds", &rounds)) return env.Null();
  if (rounds < 1 || rounds > (1 << 24)) return ThrowType(env, "rounds must be in 1..16777216");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return ThrowErrno(env, "EVP_MD_CTX_new", ENOMEM);
  unsigned char md[64];
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, first.Data(), first.Length()) == 1 && EVP_DigestFinal_ex(ctx, md, &len) == 1;
  for (int64_t i = 1; ok && i < rounds; i++) {
    ok = EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 && EVP_DigestUpdate(ctx, md, sizeof md) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &len) == 1;
  }
  EVP_MD_CTX_free(ctx);
  if (!ok || len != sizeof md) {
    OPENSSL_cleanse(md, sizeof md);
    return ThrowErrno(env, "EVP_Digest", EIO);
  }
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::Copy(env, md, sizeof md);
  OPENSSL_cleanse(md, sizeof md);
  return out;
}

// OpenSSL's legacy provider (Blowfish, CAST5: ciphers eCryptfs offers) into the default
// library context Node's crypto uses, so that `export` can read such directories without
// re-executing under --openssl-legacy-provider. True when loaded (or already there).
Napi::Value LoadOpensslProvider(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name != "legacy") return ThrowType(env, "only the legacy provider is loaded");
  return Napi::Boolean::New(env, OSSL_PROVIDER_load(nullptr, name.c_str()) != nullptr);
}

}  // namespace

// ======================================================================
// BEGIN fd-relative file operations (migrate-home; src/os/fs-at.ts)
// openat2/openat, mkdirat, symlinkat, linkat, mknodat, unlinkat, fchownat,
// utimensat, and the extended-attribute calls on fds (f*xattr) and on paths
// (l*xattr / *xattr, for symlinks and O_PATH fds via /proc/self/fd/N).
// Path and name arguments are a Buffer (raw bytes: names need not be UTF-8)
// or a string; neither may contain NUL. Every failure throws as above
// (.errno, .code, .syscall); nothing here retries or falls back: the
// policy (e.g. openat2 → openat on ENOSYS) is the caller's.
// ======================================================================
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

namespace {

// Buffer or string → bytes (no NUL inside); null/undefined allowed when allow_null.
bool ArgPath(const Napi::CallbackInfo& info, size_t i, const char* what, std::string* out, bool allow_null = false,
             bool* is_null = nullptr) {
  if (is_null) *is_null = false;
  if (allow_null && (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined())) {
    if (is_null) *is_null = true;
    return true;
  }
  if (i < info.Length() && info[i].IsBuffer()) {
    Napi::Buffer<char> b = info[i].As<Napi::Buffer<char>>();
    out->assign(b.Data(), b.Length());
  } else if (i < info.Length() && info[i].IsString()) {
    *out = info[i].As<Napi::String>().Utf8Value();
  } else {
    ThrowType(info.Env(), std::string(what) + " must be a Buffer or a string");
    return false;
  }
  if (out->find('\0') != std::string::npos) {
    ThrowType(info.Env(), std::string(what) + " must not contain NUL");
    return false;
  }
  return true;
}

// A directory fd: a non-negative int, or AT_FDCWD (-100).
bool ArgDirFd(const Napi::CallbackInfo& info, size_t i, const char* what, int* out) {
  int32_t v;
  if (!ArgInt32(info, i, what, &v)) return false;
  if (v < 0 && v != AT_FDCWD) {
    ThrowType(info.Env(), std::string(what) + " is not a file descriptor");
    return false;
  }
  *out = v;
  return true;
}

// openat2(dirfd, path, {flags, mode, resolve}) → fd. O_CLOEXEC is always added.
Napi::Value Openat2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd;
  std::string path;
  int64_t flags, mode, resolve;
  if (!ArgDirFd(info, 0, "dirfd", &dirfd) || !ArgPath(info, 1, "path", &path) || !ArgInt(info, 2, "flags", &flags) ||
      !ArgInt(info, 3, "mode", &mode) || !ArgInt(info, 4, "resolve", &resolve))
    return env.Null();
  if (flags < 0 || flags > INT32_MAX || mode < 0 || mode > 07777 || resolve < 0 || resolve > 0xff)
    return ThrowType(env, "flags, mode or resolve out of range");
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? static_cast<uint64_t>(mode) : 0;  // EINVAL otherwise
  how.resolve = static_cast<uint64_t>(resolve);
  long fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
  if (fd < 0) return ThrowErrno(env, "openat2", errno);
  return Napi::Number::New(env, static_cast<double>(fd));
}

// openat(dirfd, path, flags, mode) → fd. O_CLOEXEC is always added.
Napi::Value Openat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd;
  std::string path;
  int64_t flags, mode;
  if (!ArgDirFd(info, 0, "dirfd", &dirfd) || !ArgPath(info, 1, "path", &path) || !ArgInt(info, 2, "flags", &flags) ||
      !ArgInt(info, 3, "mode", &mode))
    return env.Null();
  if (flags < 0 || flags > INT32_MAX || mode < 0 || mode > 07777) return ThrowType(env, "flags or mode out of range");
  int fd = openat(dirfd, path.c_str(), static_cast<int>(flags) | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return ThrowErrno(env, "openat", errno);
  return Napi::Number::New(env, fd);
}

Napi::Value Mkdirat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd;
  std::string path;
  int64_t mode;
  if (!ArgDirFd(info, 0, "dirfd", &dirfd) || !ArgPath(info, 1, "path", &path) || !ArgInt(info, 2, "mode", &mode))
    return env.Null();
  if (mode < 0 || mode > 07777) return ThrowType(env, "mode out of range");
  if (mkdirat(dirfd, path.c_str(), static_cast<mode_t>(mode)) != 0) return ThrowErrno(env, "mkdirat", errno);
  return env.Undefined();
}

// symlinkat(target, dirfd, path): the link's content is target, byte for byte.
Napi::Value Symlinkat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string target, path;
  int dirfd;
  if (!ArgPath(info, 0, "target", &target) || !ArgDirFd(info, 1, "dirfd", &dirfd) || !ArgPath(info, 2, "path", &path))
    return env.Null();
  if (symlinkat(target.c_str(), dirfd, path.c_str()) != 0) return ThrowErrno(env, "symlinkat", errno);
  return env.Undefined();
}

// linkat(olddirfd, oldpath, newdirfd, newpath, flags): flags 0 never follows a symlink at oldpath.
Napi::Value Linkat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int olddir, newdir;
  std::string oldpath, newpath;
  int32_t flags;
  if (!ArgDirFd(info, 0, "olddirfd", &olddir) || !ArgPath(info, 1, "oldpath", &oldpath) ||
      !ArgDirFd(info, 2, "newdirfd", &newdir) || !ArgPath(info, 3, "newpath", &newpath) ||
      !ArgInt32(info, 4, "flags", &flags))
    return env.Null();
  if (linkat(olddir, oldpath.c_str(), newdir, newpath.c_str(), flags) != 0) return ThrowErrno(env, "linkat", errno);
  return env.Undefined();
}

// mknodat(dirfd, path, mode incl. S_IF* type, dev): dev a number or a BigInt (st_rdev).
Napi::Value Mknodat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd;
  std::string path;
  int64_t mode;
  uint64_t dev = 0;
  if (!ArgDirFd(info, 0, "dirfd", &dirfd) || !ArgPath(info, 1, "path", &path) || !ArgInt(info, 2, "mode", &mode))
    return env.Null();
  if (mode < 0 || mode > 0xffff) return ThrowType(env, "mode out of range");
  if (info.Length() > 3 && info[3].IsBigInt()) {
    bool lossless = false;
    dev = info[3].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return ThrowType(env, "dev out of range");
  } else {
    int64_t d;
    if (!ArgInt(info, 3, "dev", &d)) return env.Null();
    if (d < 0) return ThrowType(env, "dev out of range");
    dev = static_cast<uint64_t>(d);
  }
  if (mknodat(dirfd, path.c_str(), static_cast<mode_t>(mode), static_cast<dev_t>(dev)) != 0)
    return ThrowErrno(env, "mknodat", errno);
  return env.Undefined();
}

// unlinkat(dirfd, path, flags): AT_REMOVEDIR (0x200) removes an empty directory.
Napi::Value Unlinkat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd;
  std::string path;
  int32_t flags;
  if (!ArgDirFd(info, 0, "dirfd", &dirfd) || !ArgPath(info, 1, "path", &path) || !ArgInt32(info, 2, "flags", &flags))
    return env.Null();
  if (unlinkat(dirfd, path.c_str(), flags) != 0) return ThrowErrno(env, "unlinkat", errno);
  return env.Undefined();
}

// fchownat(dirfd, path, uid, gid, flags): AT_SYMLINK_NOFOLLOW (0x100), AT_EMPTY_PATH (0x1000).
Napi::Value Fchownat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd;
  std::string path;
  uint32_t uid, gid;
  int32_t flags;
  if (!ArgDirFd(info, 0, "dirfd", &dirfd) || !ArgPath(info, 1, "path", &path) || !ArgId(info, 2, "uid", true, &uid) ||
      !ArgId(info, 3, "gid", true, &gid) || !ArgInt32(info, 4, "flags", &flags))
    return env.Null();
  if (fchownat(dirfd, path.c_str(), uid, gid, flags) != 0) return ThrowErrno(env, "fchownat", errno);
  return env.Undefined();
}

// utimensat(dirfd, path | null, atimeSec, atimeNsec, mtimeSec, mtimeNsec, flags): exact to the
// nanosecond (Node's *utimes take float seconds). path null: the file of dirfd itself (futimens).
Napi::Value Utimensat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd;
  std::string path;
  bool no_path;
  int64_t as, an, ms, mn;
  int32_t flags;
  if (!ArgDirFd(info, 0, "dirfd", &dirfd) || !ArgPath(info, 1, "path", &path, true, &no_path) ||
      !ArgInt(info, 2, "atimeSec", &as) || !ArgInt(info, 3, "atimeNsec", &an) || !ArgInt(info, 4, "mtimeSec", &ms) ||
      !ArgInt(info, 5, "mtimeNsec", &mn) || !ArgInt32(info, 6, "flags", &flags))
    return env.Null();
  if (an < 0 || an > 999999999 || mn < 0 || mn > 999999999) return ThrowType(env, "nanoseconds out of range");
  if (no_path && dirfd < 0) return ThrowType(env, "futimens needs a file descriptor");
  struct timespec ts[2];
  ts[0].tv_sec = static_cast<time_t>(as);
  ts[0].tv_nsec = static_cast<long>(an);
  ts[1].tv_sec = static_cast<time_t>(ms);
  ts[1].tv_nsec = static_cast<long>(mn);
  int rc = no_path ? futimens(dirfd, ts) : utimensat(dirfd, path.c_str(), ts, flags);
  if (rc != 0) return ThrowErrno(env, no_path ? "futimens" : "utimensat", errno);
  return env.Undefined();
}

// --- extended attributes. Lists come back as an array of Buffers (one per name).
Napi::Value XattrNames(Napi::Env env, const std::vector<char>& buf, size_t len) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t k = 0;
  size_t start = 0;
  for (size_t i = 0; i < len; i++) {
    if (buf[i] != '\0') continue;
    if (i > start) out.Set(k++, Napi::Buffer<char>::Copy(env, buf.data() + start, i - start));
    start = i + 1;
  }
  return out;
}

// size query, then read; the attribute may grow in between (ERANGE): retry.
template <typename F>
bool XattrRead(F call, std::vector<char>* buf, size_t* len) {
  for (int tries = 0; tries < 8; tries++) {
    ssize_t n = call(nullptr, 0);
    if (n < 0) return false;
    buf->assign(static_cast<size_t>(n) + 1, 0);
    n = call(buf->data(), buf->size());
    if (n >= 0) {
      *len = static_cast<size_t>(n);
      return true;
    }
    if (errno != ERANGE) return false;
  }
  errno = ERANGE;
  return false;
}

Napi::Value Flistxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!ArgInt32(info, 0, "fd", &fd)) return env.Null();
  std::vector<char> buf;
  size_t len;
  if (!XattrRead([&](char* b, size_t n) { return flistxattr(fd, b, n); }, &buf, &len))
    return ThrowErrno(env, "flistxattr", errno);
  return XattrNames(env, buf, len);
}

Napi::Value Fgetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  std::string name;
  if (!ArgInt32(info, 0, "fd", &fd) || !ArgPath(info, 1, "name", &name)) return env.Null();
  std::vector<char> buf;
  size_t len;
  if (!XattrRead([&](char* b, size_t n) { return fgetxattr(fd, name.c_str(), b, n); }, &buf, &len))
    return ThrowErrno(env, "fgetxattr", errno);
  return Napi::Buffer<char>::Copy(env, buf.data(), len);
}

Napi::Value Fsetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd, flags;
  std::string name;
  Napi::Buffer<uint8_t> value;
  if (!ArgInt32(info, 0, "fd", &fd) || !ArgPath(info, 1, "name", &name) || !ArgBuf(info, 2, "value", &value) ||
      !ArgInt32(info, 3, "flags", &flags))
    return env.Null();
  if (fsetxattr(fd, name.c_str(), value.Data(), value.Length(), flags) != 0) return ThrowErrno(env, "fsetxattr", errno);
  return env.Undefined();
}

// By path: nofollow true → l*xattr (the symlink itself), false → *xattr (e.g. through the
// /proc/self/fd/N magic link of an O_PATH fd, to exactly the object that fd holds).
Napi::Value PathListxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  bool nofollow;
  if (!ArgPath(info, 0, "path", &path) || !ArgBool(info, 1, "nofollow", &nofollow)) return env.Null();
  std::vector<char> buf;
  size_t len;
  if (!XattrRead([&](char* b, size_t n) { return nofollow ? llistxattr(path.c_str(), b, n) : listxattr(path.c_str(), b, n); },
                 &buf, &len))
    return ThrowErrno(env, nofollow ? "llistxattr" : "listxattr", errno);
  return XattrNames(env, buf, len);
}

Napi::Value PathGetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path, name;
  bool nofollow;
  if (!ArgPath(info, 0, "path", &path) || !ArgPath(info, 1, "name", &name) || !ArgBool(info, 2, "nofollow", &nofollow))
    return env.Null();
  std::vector<char> buf;
  size_t len;
  if (!XattrRead(
          [&](char* b, size_t n) {
            return nofollow ? lgetxattr(path.c_str(), name.c_str(), b, n) : getxattr(path.c_str(), name.c_str(), b, n);
          },
          &buf, &len))
    return ThrowErrno(env, nofollow ? "lgetxattr" : "getxattr", errno);
  return Napi::Buffer<char>::Copy(env, buf.data(), len);
}

Napi::Value PathSetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path, name;
  Napi::Buffer<uint8_t> value;
  int32_t flags;
  bool nofollow;
  if (!ArgPath(info, 0, "path", &path) || !ArgPath(info, 1, "name", &name) || !ArgBuf(info, 2, "value", &value) ||
      !ArgInt32(info, 3, "flags", &flags) || !ArgBool(info, 4, "nofollow", &nofollow))
    return env.Null();
  int rc = nofollow ? lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), flags)
                    : setxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), flags);
  if (rc != 0) return ThrowErrno(env, nofollow ? "lsetxattr" : "setxattr", errno);
  return env.Undefined();
}

void RegisterFdAt(Napi::Env env, Napi::Object exports) {
  struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } fns[] = {
      {"openat2", Openat2},       {"openat", Openat},         {"mkdirat", Mkdirat},
      {"symlinkat", Symlinkat},   {"linkat", Linkat},         {"mknodat", Mknodat},
      {"unlinkat", Unlinkat},     {"fchownat", Fchownat},     {"utimensat", Utimensat},
      {"flistxattr", Flistxattr}, {"fgetxattr", Fgetxattr},   {"fsetxattr", Fsetxattr},
      {"pathListxattr", PathListxattr}, {"pathGetxattr", PathGetxattr}, {"pathSetxattr", PathSetxattr},
  };
  for (const auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace
// ======================================================================
// END fd-relative file operations
// ======================================================================


// ======================================================================
// BEGIN service socket and session watch (the resident agent; src/os/service.ts)
// ======================================================================

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <uv.h>

#include <atomic>
#include <map>

namespace {

// listenUnix(path, mode, backlog): a listening AF_UNIX stream socket bound at path with exactly
// `mode` (umask set around bind: no window with wider permissions). Used when not socket-activated.
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int32_t mode, backlog;
  if (!ArgStr(info, 0, "path", &path) || !ArgInt32(info, 1, "mode", &mode) || !ArgInt32(info, 2, "backlog", &backlog)) return env.Null();
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return ThrowType(env, "path: too long for a unix socket");
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno);
  mode_t old = umask(~(mode_t)mode & 0777);
  int rc = bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  int err = errno;
  umask(old);
  if (rc != 0) {
    close(fd);
    return ThrowErrno(env, "bind", err);
  }
  if (listen(fd, backlog) != 0) {
    err = errno;
    close(fd);
    return ThrowErrno(env, "listen", err);
  }
  return Napi::Number::New(env, fd);
}

// acceptPeer(fds, timeoutMs): waits (poll) until one of the listening sockets has a connection and
// accepts it (CLOEXEC, blocking). Listening fds are made non-blocking first: several workers wait
// on the same sockets, and the one that loses the race goes back to waiting. timeoutMs -1: no
// limit. Returns { fd, index, pid, uid, gid } (the peer's SO_PEERCRED) or null on timeout.
Napi::Value AcceptPeer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) return ThrowType(env, "fds: expected an array of fds");
  Napi::Array arr = info[0].As<Napi::Array>();
  int32_t timeout;
  if (!ArgInt32(info, 1, "timeoutMs", &timeout)) return env.Null();
  std::vector<struct pollfd> pfds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr[i];
    if (!v.IsNumber()) return ThrowType(env, "fds: expected numbers");
    int fd = v.As<Napi::Number>().Int32Value();
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return ThrowErrno(env, "fcntl", errno);
    pfds.push_back({fd, POLLIN, 0});
  }
  for (;;) {
    int n = poll(pfds.data(), pfds.size(), timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ThrowErrno(env, "poll", errno);
    }
    if (n == 0) return env.Null();
    for (size_t i = 0; i < pfds.size(); i++) {
      if ((pfds[i].revents & POLLIN) == 0) continue;
      int c = accept4(pfds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) continue;
        return ThrowErrno(env, "accept4", errno);
      }
      struct ucred cred;
      socklen_t len = sizeof cred;
      if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        int err = errno;
        close(c);
        return ThrowErrno(env, "getsockopt", err);
      }
      Napi::Object o = Napi::Object::New(env);
      o.Set("fd", Napi::Number::New(env, c));
      o.Set("index", Napi::Number::New(env, static_cast<double>(i)));
      o.Set("pid", Napi::Number::New(env, cred.pid));
      o.Set("uid", Napi::Number::New(env, cred.uid));
      o.Set("gid", Napi::Number::New(env, cred.gid));
      return o;
    }
  }
}

// peerCred(fd): SO_PEERCRED of a connected unix socket (the client side sees the listener's).
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!ArgInt32(info, 0, "fd", &fd)) return env.Null();
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return ThrowErrno(env, "getsockopt", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

std::atomic<bool> g_hangup_kill_armed{true};

void* HangupWatch(void* arg) {
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  struct pollfd p = {fd, 0, 0};  // POLLHUP and POLLERR are reported without being asked for
  for (;;) {
    int n = poll(&p, 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) == 0) continue;
    break;
  }
  if (g_hangup_kill_armed.load()) kill(getpid(), SIGKILL);
  return nullptr;
}

// killOnHangup(fd): a thread of its own waits until the peer of the connected socket fd has closed
// its end (the PAM module gave up: its timeout), then SIGKILLs this process, as the module kills
// an agent it spawned. A half-close (shutdown of the peer's writing side) is not a hang-up.
Napi::Value KillOnHangup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!ArgInt32(info, 0, "fd", &fd)) return env.Null();
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int rc = pthread_create(&t, &attr, HangupWatch, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  pthread_attr_destroy(&attr);
  if (rc != 0) return ThrowErrno(env, "pthread_create", rc);
  return env.Undefined();
}

// disarmHangupKill(): the reply is written; the peer closing now is the normal end, not a give-up.
Napi::Value DisarmHangupKill(const Napi::CallbackInfo& info) {
  g_hangup_kill_armed.store(false);
  return info.Env().Undefined();
}

// setPdeathsig(sig): prctl(PR_SET_PDEATHSIG): a worker dies with the master that started it.
Napi::Value SetPdeathsig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t sig;
  if (!ArgInt32(info, 0, "signal", &sig)) return env.Null();
  if (prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0) return ThrowErrno(env, "prctl", errno);
  return env.Undefined();
}

// pidfdOpen(pid): a pidfd (CLOEXEC by the kernel); readable once the process has exited.
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t pid;
  if (!ArgInt32(info, 0, "pid", &pid)) return env.Null();
  if (pid <= 0) return ThrowType(env, "pid: expected a positive number");
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return ThrowErrno(env, "pidfd_open", errno);
  return Napi::Number::New(env, static_cast<double>(fd));
}

// Readiness watches on the event loop (uv_poll): the master learns of an exited session process
// from its pidfd without a timer.
struct Watch {
  uv_poll_t handle;
  Napi::Env env;
  Napi::FunctionReference callback;
  int id;
};
std::map<int, Watch*> g_watches;
int g_next_watch = 1;

void FreeWatch(uv_handle_t* h) { delete static_cast<Watch*>(h->data); }

void StopWatch(Watch* w) {
  g_watches.erase(w->id);
  uv_poll_stop(&w->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), FreeWatch);
}

void OnReadable(uv_poll_t* h, int status, int events) {
  Watch* w = static_cast<Watch*>(h->data);
  Napi::Env env = w->env;
  Napi::HandleScope scope(env);
  Napi::Function cb = w->callback.Value();
  StopWatch(w);  // one event per watch; the callback may start a new one
  napi_value global;
  napi_get_global(env, &global);
  napi_value result;
  napi_make_callback(env, nullptr, global, cb, 0, nullptr, &result);
  (void)status;
  (void)events;
}

// watchReadable(fd, callback): calls callback once, on the event loop, when fd becomes readable
// (or fails). Returns an id for unwatch(id). The fd stays the caller's to close (after unwatch or
// the callback).
Napi::Value WatchReadable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t fd;
  if (!ArgInt32(info, 0, "fd", &fd)) return env.Null();
  if (info.Length() < 2 || !info[1].IsFunction()) return ThrowType(env, "callback: expected a function");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return ThrowType(env, "no event loop");
  Watch* w = new Watch{uv_poll_t{}, env, Napi::Persistent(info[1].As<Napi::Function>()), g_next_watch++};
  w->handle.data = w;
  int rc = uv_poll_init(loop, &w->handle, fd);
  if (rc != 0) {
    delete w;
    return ThrowErrno(env, "uv_poll_init", -rc);
  }
  rc = uv_poll_start(&w->handle, UV_READABLE, OnReadable);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), FreeWatch);
    return ThrowErrno(env, "uv_poll_start", -rc);
  }
  g_watches[w->id] = w;
  return Napi::Number::New(env, w->id);
}

Napi::Value Unwatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t id;
  if (!ArgInt32(info, 0, "id", &id)) return env.Null();
  auto it = g_watches.find(id);
  if (it != g_watches.end()) StopWatch(it->second);
  return env.Undefined();
}

void RegisterService(Napi::Env env, Napi::Object exports) {
  struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } fns[] = {
      {"listenUnix", ListenUnix},     {"acceptPeer", AcceptPeer},     {"peerCred", PeerCred},
      {"killOnHangup", KillOnHangup}, {"disarmHangupKill", DisarmHangupKill}, {"setPdeathsig", SetPdeathsig}, {"pidfdOpen", PidfdOpen},
      {"watchReadable", WatchReadable}, {"unwatch", Unwatch},
  };
  for (const auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace
// ======================================================================
// END service socket and session watch
// ======================================================================

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } fns[] = {
      {"addKey", AddKey},
      {"keyctlSearch", KeyctlSearch},
      {"keyctlRead", KeyctlRead},
      {"keyctlLink", KeyctlLink},
      {"keyctlUnlink", KeyctlUnlink},
      {"keyctlDescribe", KeyctlDescribe},
      {"keyctlGetKeyringId", KeyctlGetKeyringId},
      {"keyctlJoinSessionKeyring", KeyctlJoinSessionKeyring},
      {"keyctlSetTimeout", KeyctlSetTimeout},
      {"keyctlRevoke", KeyctlRevoke},
      {"keyctlInvalidate", KeyctlInvalidate},
      {"mount", Mount},
      {"umount2", Umount2},
      {"setresuid", SetResUid},
      {"setresgid", SetResGid},
      {"getresuid", GetResUid},
      {"getresgid", GetResGid},
      {"setgroups", SetGroups},
      {"getgroups", GetGroups},
      {"getgrouplist", GetGroupList},
      {"getpwnam", GetPwNam},
      {"getpwuid", GetPwUid},
      {"prctlSetDumpable", PrctlSetDumpable},
      {"prctlGetDumpable", PrctlGetDumpable},
      {"setrlimitCoreZero", SetRlimitCoreZero},
      {"flock", Flock},
      {"syslog", Syslog},
      {"sha512Iterate", Sha512Iterate},
      {"loadOpensslProvider", LoadOpensslProvider},
      {"secretBuffer", SecretBuffer},
      {"setrlimit", SetRlimit},
      {"getrlimit", GetRlimit},
      {"setpriority", SetPriority},
      {"setfsuid", SetFsUid},
      {"setfsgid", SetFsGid},
      {"userKeyringId", UserKeyringId},
  };
  for (const auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  RegisterFdAt(env, exports);  // fd-relative file operations (block above)
  RegisterService(env, exports);  // service socket and session watch (block above)
  return exports;
}

}  // namespace

NODE_API_MODULE(ecryptfs_native, Init)
