# Demo fragment (sourced by scripts/demo.sh): a simulated Neasmart base station polls the
# gateway's Modbus TCP slave (examples/demo.toml: 127.0.0.1:5020) with 4 zones.
start_sim neasmart neasmart --gateway 127.0.0.1:5020 --zones 4 --interval-ms 2000
