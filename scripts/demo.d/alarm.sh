# Sensors and alarms (issue 4): a simulated YoLink cloud (token and API on 127.0.0.1:8091) whose
# sensors play scripts/demo.d/alarm-script.jsonl through the appliance's own broker, and, when the
# test venv exists (`make venv`), a pysiaalarm SIA DC-09 receiver on 127.0.0.1:12300 that prints
# every alarm it accepts to data/demo/logs/sia-receiver.log. Without it the alarms wait in their
# queue: GET /api/v1/alarms/queues shows them.
start_sim yolink yolink --mode cloud --listen 127.0.0.1:8091 --mqtt 127.0.0.1:1883 \
  --client-id ua-demo --secret secret-demo --home-id home-demo \
  --script scripts/demo.d/alarm-script.jsonl --repeat
if [ -x .venv/bin/python ]; then
  .venv/bin/python tests/alarm/sia_receiver.py --protocol tcp --port 12300 --account AAA \
    >"$DATA/logs/sia-receiver.log" 2>&1 </dev/null &
  pids+=($!)
  echo "demo: SIA receiver (pysiaalarm, pid $!) on 127.0.0.1:12300 (log: $DATA/logs/sia-receiver.log)"
else
  echo "demo: no .venv (make venv): alarms for the SIA receiver stay queued"
fi
