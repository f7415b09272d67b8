{
  "targets": [
    {
      "target_name": "userlay",
      "sources": [
        "binding.c",
        "src/codec.c",
        "src/csum.c",
        "src/engine.c",
        "src/fdb.c",
        "src/icmp.c",
        "src/netlink.c",
        "src/tun.c",
        "src/udp.c"
      ],
      "include_dirs": ["include"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "libraries": ["-lpthread"]
    }
  ]
}
