// The page's whole state in the URL fragment: #s=<base64url(JSON {lanes, selected})>.

import type { Lane } from "./protocol";

export interface Shared {
  lanes: Lane[];
  selected: number;
}

function toBase64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): string {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

export function encodeFragment(state: Shared): string {
  return `#s=${toBase64Url(JSON.stringify({ lanes: state.lanes, selected: state.selected }))}`;
}

/** The state in a fragment: null when there is none, an Error saying why when it is unreadable. */
export function decodeFragment(hash: string): Shared | Error | null {
  if (!hash.startsWith("#s=")) return null;
  let value: unknown;
  try {
    value = JSON.parse(fromBase64Url(hash.slice(3)));
  } catch {
    return new Error("The link's state (#s=…) is not base64url-encoded JSON; the page starts from the default lane.");
  }
  if (value === null || typeof value !== "object") {
    return new Error("The link's state is not an object {lanes, selected}; the page starts from the default lane.");
  }
  const o = value as Record<string, unknown>;
  const lanes = o["lanes"];
  if (
    !Array.isArray(lanes) ||
    lanes.length === 0 ||
    !lanes.every((l) => l !== null && typeof l === "object" && !Array.isArray(l))
  ) {
    return new Error("The link's state has no list of lanes; the page starts from the default lane.");
  }
  const sel = o["selected"];
  const selected = typeof sel === "number" && Number.isInteger(sel) && sel >= 0 && sel < lanes.length ? sel : 0;
  return { lanes: lanes as Lane[], selected };
}
