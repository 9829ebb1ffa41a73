# Camera capture (issue 5): the simulated cameras that examples/demo.toml's [capture] section
# records — an H.264 RTSP stream on 127.0.0.1:8560 (the appliance's own RTSP server has 8554)
# and a radiometric thermal camera on 127.0.0.1:9100 whose 65.35 °C hot spot is on for 20 s,
# off for 20 s (its rule fires and clears on the bus: watchpost/capture/camera/boiler/thermal/#).
start_sim camera camera --port 8560 --path /cam --width 1280 --height 720 --fps 15 --key-int 30 \
  --bitrate-kbps 1500 --thermal-port 9100 --hot-period-s 20
