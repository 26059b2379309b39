{
  "targets": [
    {
      "target_name": "dmkit_nbd",
      "sources": [
        "src/addon.cc",
        "src/chunk_marks.cc",
        "src/cow_areas.cc",
        "src/fds.cc",
        "src/file_view.cc",
        "src/genl.cc",
        "src/holes.cc",
        "src/holes_binding.cc",
        "src/nbd_ioctl.cc",
        "src/nbd_netlink.cc",
        "src/off_thread.cc",
        "src/parked_writes.cc",
        "src/payload_pipe.cc",
        "src/readable.cc",
        "src/readable_binding.cc",
        "src/receiver.cc",
        "src/receiver_binding.cc",
        "src/send_file.cc",
        "src/shared_output.cc",
        "src/thread_copies.cc",
        "src/write_lane.cc",
        "src/write_lane_binding.cc",
        "src/write_map.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
