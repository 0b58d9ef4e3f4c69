/** Size of a majority of n voters. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * The highest index that a majority of the first `n` values of `matches`
 * has reached. Sorts those values in place (descending), so pass a scratch
 * array. An insertion sort: a configuration has a handful of voters, and
 * Array.prototype.sort allocates a work array on every call (7% of a busy
 * leader's allocation, called on every acknowledgement).
 */
export function committedIndex(matches: number[], n: number = matches.length): number {
  for (let i = 1; i < n; i++) {
    const v = matches[i]!;
    let j = i - 1;
    while (j >= 0 && matches[j]! < v) {
      matches[j + 1] = matches[j]!;
      j--;
    }
    matches[j + 1] = v;
  }
  return matches[majority(n) - 1]!;
}
