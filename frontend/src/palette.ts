// Okabe & Ito's colour-blind-safe palette (Color Universal Design, 2008), and a light-to-dark
// sequential map (viridis' stops) for the histograms' heat strips.

export const OKABE_ITO = {
  black: "#000000",
  orange: "#E69F00",
  skyBlue: "#56B4E9",
  green: "#009E73",
  yellow: "#F0E442",
  blue: "#0072B2",
  vermillion: "#D55E00",
  purple: "#CC79A7",
} as const;

/** Series colours in order (yellow last: it is the hardest to see on white). */
export const SERIES = [
  OKABE_ITO.blue,
  OKABE_ITO.vermillion,
  OKABE_ITO.green,
  OKABE_ITO.purple,
  OKABE_ITO.orange,
  OKABE_ITO.skyBlue,
  OKABE_ITO.black,
  OKABE_ITO.yellow,
] as const;

/** Class colours for the decision map's points: class 0 orange, class 1 blue, then the rest. */
export const CLASSES = [
  OKABE_ITO.orange,
  OKABE_ITO.blue,
  OKABE_ITO.green,
  OKABE_ITO.vermillion,
  OKABE_ITO.purple,
  OKABE_ITO.skyBlue,
  OKABE_ITO.yellow,
  OKABE_ITO.black,
] as const;

export function seriesColour(i: number): string {
  return SERIES[i % SERIES.length] ?? OKABE_ITO.black;
}

export function classColour(i: number): string {
  return CLASSES[i % CLASSES.length] ?? OKABE_ITO.black;
}

export type RGB = [number, number, number];

export function hexToRgb(hex: string): RGB {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

export function mix(a: RGB, b: RGB, t: number): RGB {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

// White, then viridis from yellow to dark purple: lightness falls monotonically with the share.
const HEAT_STOPS: RGB[] = [
  [255, 255, 255],
  [253, 231, 37],
  [94, 201, 98],
  [33, 145, 140],
  [59, 82, 139],
  [68, 1, 84],
];

/** The heat colour of t in [0, 1] (0 white: nothing in this bin). */
export function heat(t: number): RGB {
  const x = Math.min(1, Math.max(0, t)) * (HEAT_STOPS.length - 1);
  const i = Math.min(HEAT_STOPS.length - 2, Math.floor(x));
  const a = HEAT_STOPS[i] ?? [255, 255, 255];
  const b = HEAT_STOPS[i + 1] ?? a;
  return mix(a, b, x - i);
}
