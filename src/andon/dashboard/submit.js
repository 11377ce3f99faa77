// The submit form: a field per param of the chosen kind, built from its JSON schema.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { jobHref, shortId } from "./format.js";
import { toast } from "./notices.js";
import { cardsChanged, historyChanged, keep } from "./state.js";

let kinds = [];

// Show the kinds the server runs: in the form and in the history's kind filter.
export function showKinds(items) {
  kinds = items;
  const select = $("submit-kind");
  const previous = select.value;
  select.replaceChildren(...kinds.map((kind) => h("option", { value: kind.kind }, kind.kind)));
  if (kinds.some((kind) => kind.kind === previous)) select.value = previous;
  const filter = $("filter-kind");
  const chosen = filter.value;
  filter.replaceChildren(h("option", { value: "" }, "all"), ...kinds.map((kind) => h("option", { value: kind.kind }, kind.kind)));
  filter.value = chosen;
  renderParams();
}

function currentKind() {
  return kinds.find((kind) => kind.kind === $("submit-kind").value);
}

// A param's schema with a "null" alternative folded into `nullable`.
function simplify(schema) {
  const options = schema.anyOf || schema.oneOf;
  if (options) {
    const real = options.filter((option) => option.type !== "null");
    if (real.length === 1) return { ...real[0], ...schema, anyOf: undefined, oneOf: undefined, nullable: true };
  }
  return schema;
}

function renderParams() {
  const fieldset = $("submit-params");
  const kind = currentKind();
  $("submit-kind-help").textContent = kind ? kind.description : "";
  const timeout = $("submit-timeout");
  timeout.placeholder = kind && kind.timeout_s ? `${kind.timeout_s} (default)` : "none (default)";
  const schema = (kind && kind.params_schema) || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const fields = Object.entries(properties).map(([name, property]) => paramField(name, simplify(property), required.has(name)));
  fieldset.replaceChildren(h("legend", null, "Params"), ...(fields.length ? fields : [h("p", { class: "help" }, "This kind takes no params.")]));
  $("submit-errors").replaceChildren();
}

function paramField(name, schema, required) {
  const id = `param-${name}`;
  const label = h("label", { for: id }, name, required ? h("span", { class: "required", title: "required" }, " *") : null);
  const hasDefault = Object.prototype.hasOwnProperty.call(schema, "default");
  let input;
  let type = schema.type;
  if (Array.isArray(schema.enum)) {
    type = "enum";
    input = h("select", { id }, ...(required ? [] : [h("option", { value: "" }, "—")]), ...schema.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
    if (hasDefault) input.value = JSON.stringify(schema.default);
  } else if (type === "boolean") {
    input = h("input", { id, type: "checkbox" });
    input.checked = hasDefault ? Boolean(schema.default) : false;
  } else if (type === "integer" || type === "number") {
    input = h("input", { id, type: "number", step: type === "integer" ? "1" : "any", inputmode: type === "integer" ? "numeric" : "decimal" });
    if (schema.minimum !== undefined) input.min = schema.minimum;
    if (schema.maximum !== undefined) input.max = schema.maximum;
    if (hasDefault && schema.default !== null) input.value = String(schema.default);
  } else if (type === "string") {
    input = h("input", { id, type: "text", autocomplete: "off" });
    if (hasDefault && schema.default !== null) input.value = schema.default;
  } else {
    type = "json";
    input = h("textarea", { id, rows: "3", spellcheck: "false", class: "mono" });
    if (hasDefault) input.value = JSON.stringify(schema.default);
  }
  input.name = name;
  input.dataset.type = type;
  input.dataset.nullable = schema.nullable ? "1" : "";
  if (required) input.required = true;
  const shape = { array: "JSON list, e.g. [\"a\", \"b\"]", object: "JSON object, e.g. {\"key\": 1}" };
  const help = [type === "json" ? shape[schema.type] || "JSON" : type];
  if (hasDefault) help.push(`default ${JSON.stringify(schema.default)}`);
  if (schema.description) help.push(schema.description);
  const helpEl = h("p", { class: "help", id: `${id}-help` }, help.join(" · "));
  input.setAttribute("aria-describedby", helpEl.id);
  const field = h("div", { class: type === "boolean" ? "field check" : "field" });
  if (type === "boolean") field.append(input, label, helpEl);
  else field.append(label, input, helpEl);
  return field;
}

// The params as JSON values, or a list of problems.
function collectParams() {
  const params = {};
  const problems = [];
  for (const input of $("submit-params").querySelectorAll("[data-type]")) {
    const { name } = input;
    const type = input.dataset.type;
    const raw = input.type === "checkbox" ? null : input.value.trim();
    if (type === "boolean") {
      params[name] = input.checked;
      continue;
    }
    if (raw === "") {
      if (input.required) problems.push(`${name}: required`);
      else if (input.dataset.nullable) params[name] = null;
      continue;
    }
    if (type === "integer" || type === "number") {
      const value = Number(raw);
      if (!Number.isFinite(value) || (type === "integer" && !Number.isInteger(value))) problems.push(`${name}: not ${type === "integer" ? "a whole number" : "a number"}`);
      else params[name] = value;
    } else if (type === "enum" || type === "json") {
      try {
        params[name] = JSON.parse(raw);
      } catch {
        problems.push(`${name}: not valid JSON`);
      }
    } else {
      params[name] = raw;
    }
  }
  return { params, problems };
}

function showProblems(problems) {
  $("submit-errors").replaceChildren(...problems.map((problem) => h("p", null, problem)));
}

async function submit(event) {
  event.preventDefault();
  const kind = currentKind();
  if (!kind) return;
  const { params, problems } = collectParams();
  const body = { kind: kind.kind, params };
  const timeout = $("submit-timeout").value.trim();
  if (timeout !== "") {
    const seconds = Number(timeout);
    if (!(seconds > 0)) problems.push("timeout: a positive number of seconds");
    else body.timeout_s = seconds;
  }
  if (problems.length) {
    showProblems(problems);
    return;
  }
  showProblems([]);
  const button = $("submit-button");
  button.disabled = true;
  try {
    const job = await api("POST", "jobs", body);
    keep(job);
    cardsChanged();
    toast(`Submitted ${job.kind}:`, "info", { href: jobHref(job.id), text: shortId(job.id) });
    historyChanged();
  } catch (error) {
    showProblems(error.detail && error.detail.problems ? error.detail.problems : [error.message]);
  } finally {
    button.disabled = false;
  }
}

export function setUpSubmitForm() {
  $("submit-kind").addEventListener("change", renderParams);
  $("submit-form").addEventListener("submit", submit);
}
