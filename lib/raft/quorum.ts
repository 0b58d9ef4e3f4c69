/** Size of a majority of n voters. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The highest index that a majority of `matches` has reached. */
export function committedIndex(matches: number[]): number {
  const sorted = matches.slice().sort((a, b) => b - a);
  return sorted[majority(matches.length) - 1]!;
}
