#!/usr/bin/env bash
# Vendored unchanged (apart from these two lines) from the project's shared tools (shared/tools/virtual-mic.sh)
# so the audio tests need nothing outside the repository.
# virtual-mic.sh - idempotently start a user-mode PulseAudio daemon with a
# virtual microphone on a machine with no sound card (works as root, no
# systemd, no D-Bus, no X11).
#
#   virt_speaker         null sink (48 kHz stereo, like real hardware); play test audio here
#   virt_mic             remap of virt_speaker.monitor -> a real (non-monitor) capture
#                        source; set as the default source
#   keepalive_sink +     a 60 ms module-loopback from virt_speaker.monitor into a second
#   module-loopback      null sink. Without it the null sink renders in 2 s blocks while
#                        idle, so a new recorder waits 1-2 s for its first frame (enough to
#                        make PvRecorder.read() fail with IO_ERROR). Costs ~1% CPU.
#
# Usage:  ./virtual-mic.sh [start|stop|status|env]     (default: start)
#         eval "$(./virtual-mic.sh env)"   # export PULSE_SERVER/PULSE_COOKIE for clients
#         paplay -d virt_speaker speech.wav  # -> shows up on the default mic
set -euo pipefail

BASE=${MIC_BASE:-/tmp/virtual-mic}
PA_DIR=${PA_DIR:-$BASE/pa}            # config, socket, pid file, log
export HOME=${MIC_HOME:-$BASE/home}   # daemon's cookie + state db live here, not in /root
export XDG_RUNTIME_DIR=$PA_DIR/xdg
export XDG_CONFIG_HOME=$HOME/.config
export PULSE_RUNTIME_PATH=$PA_DIR/xdg/pulse
export PULSE_SERVER=unix:$PA_DIR/native
SOCK=$PA_DIR/native

print_env() {  # what clients need (auth-anonymous=1, so the cookie is only read, never created)
  echo "export PULSE_SERVER=$PULSE_SERVER"
  echo "export PULSE_COOKIE=$HOME/.config/pulse/cookie"
}

pa_pid() {  # PID of our daemon (read from its pid file), empty if not running
  local f=$PULSE_RUNTIME_PATH/pid p
  [[ -r $f ]] || return 0
  p=$(tr -dc '0-9' <"$f")
  [[ -n $p && -d /proc/$p ]] && [[ $(cat /proc/$p/comm) == pulseaudio ]] && echo "$p"
  return 0
}

ensure_modules() {
  local sinks sources
  sinks=$(pactl list short sinks | cut -f2)
  grep -qx virt_speaker <<<"$sinks" || pactl load-module module-null-sink \
      sink_name=virt_speaker rate=48000 channels=2 \
      sink_properties=device.description=Virtual_Speaker >/dev/null
  sources=$(pactl list short sources | cut -f2)
  grep -qx virt_mic <<<"$sources" || pactl load-module module-remap-source \
      master=virt_speaker.monitor source_name=virt_mic \
      source_properties=device.description=Virtual_Microphone >/dev/null
  grep -qx keepalive_sink <<<"$sinks" || pactl load-module module-null-sink \
      sink_name=keepalive_sink sink_properties=device.description=Keepalive_Sink >/dev/null
  pactl list short modules | grep -q 'module-loopback.*source=virt_speaker.monitor' || \
    pactl load-module module-loopback source=virt_speaker.monitor sink=keepalive_sink \
      latency_msec=60 source_dont_move=true sink_dont_move=true >/dev/null
  pactl set-default-sink virt_speaker
  pactl set-default-source virt_mic
  wait_ready
}

# A fresh null sink renders its first 2 s block before the loopback's 60 ms
# latency request takes effect; until then new recorders get no data. Wait
# until a recorder gets its first bytes from virt_mic within 150 ms.
wait_ready() {
  local i t0 dt
  for i in $(seq 40); do
    t0=$(date +%s%N)
    timeout 1 parec --raw --latency-msec=10 -d virt_mic 2>/dev/null | head -c 64 >/dev/null || true
    dt=$(( ($(date +%s%N) - t0) / 1000000 ))
    (( dt < 150 )) && return 0
    sleep 0.1
  done
  echo "warning: virt_mic still slow to deliver first audio (${dt} ms)" >&2
}

start() {
  mkdir -p "$PA_DIR" "$HOME" "$PULSE_RUNTIME_PATH"
  chmod 700 "$XDG_RUNTIME_DIR" "$PULSE_RUNTIME_PATH"
  if [[ -z $(pa_pid) ]]; then
    rm -f "$SOCK"
    cat >"$PA_DIR/default.pa" <<EOF
load-module module-native-protocol-unix auth-anonymous=1 socket=$SOCK
EOF
    # -n: ignore /etc/pulse/default.pa (no udev/alsa/bluetooth/x11 probing)
    pulseaudio --daemonize=yes --system=false --exit-idle-time=-1 \
      --disallow-exit=yes --realtime=no --high-priority=no \
      --use-pid-file=yes -n -F "$PA_DIR/default.pa" \
      --log-target="file:$PA_DIR/pulseaudio.log" --log-level=notice
    for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  pactl info >/dev/null || { echo "pulseaudio failed; see $PA_DIR/pulseaudio.log" >&2; exit 1; }
  ensure_modules
  echo "pulseaudio pid=$(pa_pid) server=$PULSE_SERVER default_source=$(pactl get-default-source)"
  pactl list short sources
}

stop() {
  local p; p=$(pa_pid)
  if [[ -n $p ]]; then
    kill "$p"
    for _ in $(seq 50); do [[ -d /proc/$p ]] || break; sleep 0.1; done
    echo "stopped pulseaudio pid=$p"
  else
    echo "not running"
  fi
  rm -f "$SOCK"
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  status) p=$(pa_pid); [[ -n $p ]] && { echo "running pid=$p"; pactl list short sources; } || { echo "not running"; exit 1; } ;;
  env) print_env ;;
  *) echo "usage: $0 [start|stop|status|env]" >&2; exit 2 ;;
esac
