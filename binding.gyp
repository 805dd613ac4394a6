{
  "targets": [
    {
      "target_name": "ecryptfs_native",
      "sources": ["src/os/native/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"],
      "ldflags": ["-Wl,-z,relro,-z,now"]
    },
    {
      "target_name": "pam_ecryptfs_agent",
      "type": "shared_library",
      "product_prefix": "",
      "product_extension": "so",
      "sources": ["pam/pam_ecryptfs_agent.c"],
      "cflags": ["-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"],
      "ldflags": ["-Wl,-z,relro,-z,now", "-Wl,--no-undefined"],
      "libraries": ["-lpam"]
    }
  ]
}
