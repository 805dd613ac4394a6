// placeholder replaced by the native-addon work (issue 4)
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(ecryptfs_native, Init)
