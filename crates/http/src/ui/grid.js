// The node grid: a session's nodes on a canvas, laid out by topology
// (cabinet → chassis → slot → node, from Cray xnames such as x1000c0s0b0n0),
// each cell coloured by phase. A canvas, not one element per node, so that
// 10,000 nodes redraw in a frame.

/** Phase colours: the Okabe-Ito colour-blind safe palette; failed cells also get a cross. */
export const PHASES = [
  ["pending", "#d9dde2", "pending"],
  ["draining", "#e69f00", "draining"],
  ["drained", "#f0e442", "drained"],
  ["booting", "#56b4e9", "booting"],
  ["verifying", "#0072b2", "verifying"],
  ["resuming", "#cc79a7", "resuming"],
  ["done", "#009e73", "done"],
  ["failing", "#f4a582", "failing"],
  ["failed", "#d55e00", "failed"],
  ["releasing", "#999999", "releasing"],
  ["skipped", "#444444", "skipped"],
  // Booted back to the rollback template: in service, but not upgraded.
  ["reverted", "#6a3d9a", "reverted"],
  // Held out of service by someone else (issue 21): not in a phase of
  // crus's own work, so shown as what it is, whatever crus did with it.
  ["foreign", "#8c510a", "out of service by someone else"],
];
const COLOUR = Object.fromEntries(PHASES.map(([phase, colour]) => [phase, colour]));

/** Phases in which crus is working on a node: shown as such even when someone else holds it. */
const AT_WORK = new Set(["draining", "drained", "booting", "verifying", "resuming", "failing", "releasing"]);

/**
 * What a node is shown as, in the grid and the legend: its phase, or
 * "foreign" when someone else holds it out of service (the node's
 * `foreign_reason`) and crus is not working on it (pending, skipped, or
 * upgraded and put back out of service as found).
 */
export function lookOf(node) {
  if (node.foreign_reason && !AT_WORK.has(node.phase)) return "foreign";
  return node.phase;
}

const XNAME = /^x(\d+)c(\d+)s(\d+)b(\d+)n(\d+)$/;
const LABEL_WIDTH = 34;
const LABEL_HEIGHT = 16;

/** A node's tooltip: its phase, boot attempts, last reason and, when someone else holds it out of service, their reason. */
export function describeNode(node) {
  const attempts = `${node.attempts} boot attempt${node.attempts === 1 ? "" : "s"}`;
  const reason = node.reason ? `; last reason: ${node.reason}` : "";
  const foreign = node.foreign_reason ? `; out of service by someone else: "${node.foreign_reason}"` : "";
  return `${node.id} — phase: ${node.phase}; ${attempts}${reason}${foreign}`;
}

/** Where a node sits: its cabinet, chassis, slot and place in the slot, or null for other names. */
export function parseXname(id) {
  const match = XNAME.exec(id);
  if (!match) return null;
  const [cabinet, chassis, slot, board, node] = match.slice(1).map(Number);
  return { cabinet, chassis, slot, board, node };
}

/** A canvas grid of nodes; `describe(node)` is the text shown on hover or focus. */
export class NodeGrid {
  constructor(canvas, tooltip, describe) {
    this.canvas = canvas;
    this.tooltip = tooltip;
    this.describe = describe;
    this.cells = [];
    this.byId = new Map();
    this.focused = -1;
    this.hovered = -1;
    canvas.addEventListener("mousemove", (event) => this.hover(event));
    canvas.addEventListener("mouseleave", () => {
      this.hovered = -1;
      this.showTooltip();
    });
    canvas.addEventListener("keydown", (event) => this.key(event));
    canvas.addEventListener("focus", () => {
      if (this.focused < 0 && this.cells.length > 0) this.focused = 0;
      this.draw();
      this.showTooltip();
    });
    canvas.addEventListener("blur", () => {
      this.draw();
      this.showTooltip();
    });
  }

  /** Lays out `nodes` (objects with `id` and `phase`), in topology order. */
  layout(nodes, availableWidth) {
    const size = nodes.length > 4000 ? 6 : nodes.length > 1000 ? 9 : 14;
    const gap = size > 8 ? 2 : 1;
    const step = size + gap;
    // cabinet -> chassis -> slot -> nodes of the slot
    const cabinets = new Map();
    const others = [];
    for (const node of nodes) {
      const place = parseXname(node.id);
      if (!place) {
        others.push(node);
        continue;
      }
      const chassis = getOrMake(getOrMake(cabinets, place.cabinet, Map), place.chassis, Map);
      const slot = getOrMake(chassis, place.slot, Array);
      slot.push({ node, order: place.board * 1000 + place.node });
    }
    const cells = [];
    const labels = [];
    let x = 0;
    let y = 0;
    let rowHeight = 0;
    const width = Math.max(availableWidth, 200);
    for (const cabinetKey of [...cabinets.keys()].sort((a, b) => a - b)) {
      const chassisMap = cabinets.get(cabinetKey);
      const chassisKeys = [...chassisMap.keys()].sort((a, b) => a - b);
      const slotCount = Math.max(...chassisKeys.map((key) => Math.max(...chassisMap.get(key).keys()) + 1));
      const perSlot = Math.max(...chassisKeys.flatMap((key) => [...chassisMap.get(key).values()].map((slot) => slot.length)));
      const slotRows = perSlot > 2 ? 2 : 1;
      const slotColumns = Math.ceil(perSlot / slotRows);
      const slotWidth = slotColumns * step + 3;
      const blockWidth = LABEL_WIDTH + slotCount * slotWidth + 12;
      const chassisHeight = slotRows * step + 4;
      const blockHeight = LABEL_HEIGHT + chassisKeys.length * chassisHeight + 10;
      if (x > 0 && x + blockWidth > width) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      labels.push({ text: `x${cabinetKey}`, x, y: y + 11, bold: true });
      chassisKeys.forEach((chassisKey, row) => {
        const top = y + LABEL_HEIGHT + row * chassisHeight;
        labels.push({ text: `c${chassisKey}`, x, y: top + Math.min(chassisHeight - 2, 12) });
        const slots = chassisMap.get(chassisKey);
        for (const slotKey of [...slots.keys()].sort((a, b) => a - b)) {
          const members = slots.get(slotKey).sort((a, b) => a.order - b.order);
          members.forEach((member, index) => {
            cells.push({
              node: member.node,
              x: x + LABEL_WIDTH + slotKey * slotWidth + Math.floor(index / slotRows) * step,
              y: top + (index % slotRows) * step,
            });
          });
        }
      });
      x += blockWidth;
      rowHeight = Math.max(rowHeight, blockHeight);
    }
    if (others.length > 0) {
      if (x > 0) y += rowHeight;
      labels.push({ text: "other nodes", x: 0, y: y + 11, bold: true });
      const columns = Math.max(1, Math.floor((width - LABEL_WIDTH) / step));
      others.forEach((node, index) => {
        cells.push({ node, x: LABEL_WIDTH + (index % columns) * step, y: y + LABEL_HEIGHT + Math.floor(index / columns) * step });
      });
      rowHeight = LABEL_HEIGHT + Math.ceil(others.length / columns) * step + 10;
      x = 1;
    }
    const height = y + rowHeight;
    this.cells = cells;
    this.labels = labels;
    this.size = size;
    this.byId = new Map(cells.map((cell, index) => [cell.node.id, index]));
    this.width = Math.ceil(Math.min(width, Math.max(...cells.map((cell) => cell.x + step), 200)));
    this.height = Math.max(Math.ceil(height), 40);
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = this.width * ratio;
    this.canvas.height = this.height * ratio;
    this.canvas.style.width = `${this.width}px`;
    this.canvas.style.height = `${this.height}px`;
    this.ratio = ratio;
    if (this.focused >= cells.length) this.focused = cells.length - 1;
    this.draw();
  }

  /** Redraws every cell; cheap enough to run once per animation frame. */
  draw() {
    const context = this.canvas.getContext("2d");
    context.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    context.clearRect(0, 0, this.width, this.height);
    context.fillStyle = "#1b1f24";
    for (const label of this.labels || []) {
      context.font = `${label.bold ? "600 " : ""}11px system-ui, sans-serif`;
      context.fillText(label.text, label.x, label.y);
    }
    const size = this.size;
    for (const cell of this.cells) {
      const phase = cell.node.phase;
      context.fillStyle = COLOUR[lookOf(cell.node)] || "#ffffff";
      context.fillRect(cell.x, cell.y, size, size);
      if (phase === "failed" || phase === "failing") {
        // A cross, so failures do not depend on colour alone.
        context.strokeStyle = "#ffffff";
        context.lineWidth = 1.5;
        context.beginPath();
        context.moveTo(cell.x + 2, cell.y + 2);
        context.lineTo(cell.x + size - 2, cell.y + size - 2);
        context.moveTo(cell.x + size - 2, cell.y + 2);
        context.lineTo(cell.x + 2, cell.y + size - 2);
        context.stroke();
      }
    }
    const marked = this.hovered >= 0 ? this.hovered : document.activeElement === this.canvas ? this.focused : -1;
    if (marked >= 0 && this.cells[marked]) {
      const cell = this.cells[marked];
      context.strokeStyle = "#000000";
      context.lineWidth = 2;
      context.strokeRect(cell.x - 1.5, cell.y - 1.5, size + 3, size + 3);
    }
  }

  /** Refreshes the tooltip after the nodes changed (the node shown may have moved on). */
  refreshTooltip() {
    this.showTooltip();
  }

  hover(event) {
    const bounds = this.canvas.getBoundingClientRect();
    const x = event.clientX - bounds.left;
    const y = event.clientY - bounds.top;
    const size = this.size;
    this.hovered = this.cells.findIndex((cell) => x >= cell.x && x < cell.x + size + 1 && y >= cell.y && y < cell.y + size + 1);
    this.draw();
    this.showTooltip();
  }

  key(event) {
    if (this.cells.length === 0) return;
    const current = this.cells[Math.max(this.focused, 0)];
    let next = this.focused;
    switch (event.key) {
      case "ArrowRight": next = Math.min(this.focused + 1, this.cells.length - 1); break;
      case "ArrowLeft": next = Math.max(this.focused - 1, 0); break;
      case "Home": next = 0; break;
      case "End": next = this.cells.length - 1; break;
      case "ArrowDown": next = this.nearest(current, (cell) => cell.y > current.y); break;
      case "ArrowUp": next = this.nearest(current, (cell) => cell.y < current.y); break;
      default: return;
    }
    event.preventDefault();
    this.hovered = -1;
    this.focused = next < 0 ? this.focused : next;
    this.draw();
    this.showTooltip();
  }

  // The closest cell to `from` among those `wanted` accepts, by rows first; -1 when none.
  nearest(from, wanted) {
    let best = -1;
    let bestScore = Infinity;
    this.cells.forEach((cell, index) => {
      if (!wanted(cell)) return;
      const score = Math.abs(cell.y - from.y) * 1000 + Math.abs(cell.x - from.x);
      if (score < bestScore) {
        bestScore = score;
        best = index;
      }
    });
    return best;
  }

  showTooltip() {
    const index = this.hovered >= 0 ? this.hovered : document.activeElement === this.canvas ? this.focused : -1;
    const cell = this.cells[index];
    if (!cell) {
      this.tooltip.hidden = true;
      return;
    }
    this.tooltip.textContent = this.describe(cell.node);
    this.tooltip.hidden = false;
    const left = Math.min(cell.x + this.size + 8, Math.max(this.width - 260, 0));
    this.tooltip.style.left = `${left}px`;
    this.tooltip.style.top = `${cell.y + this.size + 6}px`;
  }
}

function getOrMake(map, key, Kind) {
  let value = map.get(key);
  if (value === undefined) {
    value = new Kind();
    map.set(key, value);
  }
  return value;
}
