{
  "targets": [
    {
      "target_name": "userlay",
      "sources": [
        "<!@(ls -1 binding/*.c src/*.c)"
      ],
      "include_dirs": ["include", "binding"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "libraries": ["-lpthread"]
    }
  ]
}
