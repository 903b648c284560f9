#!/usr/bin/env bash
# Installs the system packages a Koto feature needs, only when they are missing.
#   scripts/system-deps.sh offline   pocketsphinx + its en-us model (the offline default engine)
#   scripts/system-deps.sh audio     PulseAudio + flite + sox (virtual microphone and speech fixtures for tests),
#                                    ffmpeg (compressing uploads over a provider's limit, converting other formats)
#   scripts/system-deps.sh desktop   Xvfb + xdotool + xclip (the paste/type/clipboard outputs under a virtual X
#                                    display), dmenu + xev (X clients the tests watch the keystrokes land in),
#                                    xset (server auto-repeat for the hotkey tests); openbox + xterm + rxvt-unicode +
#                                    a GTK text view (python3-gi) as real paste/type receivers; headless sway + foot +
#                                    wtype + wl-clipboard for the Wayland outputs
#   scripts/system-deps.sh browser   Debian's chromium (the control panel's browser tests drive /usr/bin/chromium;
#                                    no browser is downloaded)
# As root it runs apt-get itself; otherwise through `sudo -n` when that works; otherwise it prints
# the exact command and exits 1. On a system without apt-get it says what to install instead.
set -euo pipefail

declare -A CHECK=(
  [pocketsphinx]="command -v pocketsphinx_continuous"
  [pocketsphinx-en-us]="test -d /usr/share/pocketsphinx/model/en-us/en-us"
  [pulseaudio]="command -v pulseaudio"
  [pulseaudio-utils]="command -v pactl"
  [flite]="command -v flite"
  [sox]="command -v sox"
  [ffmpeg]="command -v ffmpeg"
  [xvfb]="command -v Xvfb"
  [xdotool]="command -v xdotool"
  [xclip]="command -v xclip"
  [suckless-tools]="command -v dmenu"
  [x11-utils]="command -v xev"
  [x11-xserver-utils]="command -v xset"
  [openbox]="command -v openbox"
  [xterm]="command -v xterm"
  [rxvt-unicode]="command -v urxvt"
  [python3-gi]="/usr/bin/python3 -c 'import gi'"
  [gir1.2-gtk-3.0]="ls /usr/lib/*/girepository-1.0/Gtk-3.0.typelib"
  [sway]="command -v sway"
  [foot]="command -v foot"
  [wtype]="command -v wtype"
  [wl-clipboard]="command -v wl-copy"
  [chromium]="test -x /usr/bin/chromium"
)
declare -A GROUPS_=(
  [offline]="pocketsphinx pocketsphinx-en-us"
  [audio]="pulseaudio pulseaudio-utils flite sox ffmpeg"
  [browser]="chromium"
  [desktop]="xvfb xdotool xclip suckless-tools x11-utils x11-xserver-utils openbox xterm rxvt-unicode python3-gi gir1.2-gtk-3.0 sway foot wtype wl-clipboard"
)

missing=()
for group in "$@"; do
  [[ -n ${GROUPS_[$group]:-} ]] || { echo "system-deps: unknown group '$group' (offline, audio, desktop, browser)" >&2; exit 2; }
  for pkg in ${GROUPS_[$group]}; do
    eval "${CHECK[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
  done
done
((${#missing[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: please install: ${missing[*]} (macOS: brew install cmu-pocketsphinx flite sox ffmpeg; pulseaudio and the desktop group are Linux-only)" >&2
  exit 1
fi
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "system-deps: missing ${missing[*]}. Run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
