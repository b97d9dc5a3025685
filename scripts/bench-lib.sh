# Shared by scripts/bench-compare.sh and scripts/bench-adaptive.sh (sourced, not run).

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# alternate ROUNDS A B: runs the shell functions A and B (each prints one number) alternately ROUNDS times, so both
# see the same machine; prints "median-of-A median-of-B".
alternate() {
  local rounds=$1 a=$2 b=$3 xs=() ys=()
  for _ in $(seq "$rounds"); do
    xs+=("$($a)")
    ys+=("$($b)")
  done
  echo "$(printf '%s\n' "${xs[@]}" | median) $(printf '%s\n' "${ys[@]}" | median)"
}
