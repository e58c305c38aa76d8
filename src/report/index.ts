// imssa-report's core: a program (+ optional inputs and model) -> one self-contained HTML
// page. collect.ts gathers the figures, page.ts and the render-*.ts modules draw them.

import type { Program } from "../backend/program.js";
import { collectReport, type ReportOptions } from "./collect.js";
import { renderPage } from "./page.js";

export { collectReport, DEFAULT_STEPS, type ReportData, type ReportInput, type ReportOptions } from "./collect.js";
export { renderPage } from "./page.js";

export function buildReportHtml(p: Program, opts: ReportOptions): string {
  return renderPage(collectReport(p, opts));
}
