// `lapce-ai acp` driven by a client built on the official ACP TypeScript SDK, against a fake
// OpenAI-compatible provider on 127.0.0.1. Every line the agent writes to stdout is checked: it
// must parse as one JSON-RPC 2.0 message, and its payload must validate against the ACP v1 JSON
// schema shipped in @agentclientprotocol/sdk (the specific type for the method it answers, sends
// or notifies; the Agent message union for extension methods).
//
// Run: LAPCE_AI_BIN=build/<dir>/src/cli/lapce-ai node --test tests/acp/acp_test.mjs
// (ACP_TEST_TRACE=1 prints the traffic; --test-name-pattern=<regex> picks tests.)
// (ctest runs it as `acp_node_test`; scripts/setup installs node_modules here.)

import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import * as acp from "@agentclientprotocol/sdk";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const kBinary = process.env.LAPCE_AI_BIN;
if (!kBinary || !fs.existsSync(kBinary)) {
  throw new Error(
    `LAPCE_AI_BIN must name the lapce-ai binary (got '${kBinary ?? ""}'); ` +
      "build it with `cmake --build <dir> --target lapce-ai`",
  );
}
const kTestTimeoutMs = 30_000;  // Per test; each wait inside has its own, shorter deadline.
const kWaitMs = 10_000;
const kTrace = Boolean(process.env.ACP_TEST_TRACE);  // Print every message both ways to stderr.

// ---------------------------------------------------------------------------------------------
// The ACP v1 schema and its validators.

const kSchemaPath = new URL(
  "./node_modules/@agentclientprotocol/sdk/schema/v1/schema.json",
  import.meta.url,
);
const schema = JSON.parse(fs.readFileSync(kSchemaPath, "utf8"));
// strict: false because the schema carries x-* annotations and OpenAPI's `discriminator`;
// neither changes what validates (the oneOf it annotates is still checked).
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const isInteger = (x) => Number.isInteger(x);
const isUnsigned = (x) => Number.isInteger(x) && x >= 0;
ajv.addFormat("int32", { type: "number", validate: (x) => isInteger(x) && Math.abs(x) < 2 ** 31 });
ajv.addFormat("int64", { type: "number", validate: isInteger });
ajv.addFormat("uint16", { type: "number", validate: (x) => isUnsigned(x) && x < 2 ** 16 });
ajv.addFormat("uint32", { type: "number", validate: (x) => isUnsigned(x) && x < 2 ** 32 });
ajv.addFormat("uint64", { type: "number", validate: isUnsigned });
ajv.addFormat("double", { type: "number", validate: (x) => Number.isFinite(x) });
ajv.addSchema(schema, "acp");

const validators = new Map();
function validatorFor(definition) {
  if (!validators.has(definition)) {
    assert.ok(schema.$defs[definition], `the ACP schema has no definition '${definition}'`);
    validators.set(definition, ajv.compile({ $ref: `acp#/$defs/${definition}` }));
  }
  return validators.get(definition);
}
// Any message the agent may send (top-level "Agent" variant of the schema).
const validateAgentMessage = ajv.compile({
  type: "object",
  properties: { jsonrpc: { const: "2.0" } },
  required: ["jsonrpc"],
  anyOf: [
    { $ref: "acp#/$defs/AgentRequest" },
    { $ref: "acp#/$defs/AgentResponse" },
    { $ref: "acp#/$defs/AgentNotification" },
  ],
});

// What the agent answers to each client method.
const kResponseType = {
  initialize: "InitializeResponse",
  authenticate: "AuthenticateResponse",
  "session/new": "NewSessionResponse",
  "session/load": "LoadSessionResponse",
  "session/prompt": "PromptResponse",
  "session/set_mode": "SetSessionModeResponse",
  "session/list": "ListSessionsResponse",
};
// What the agent may send on its own.
const kAgentRequestType = {
  "session/request_permission": "RequestPermissionRequest",
  "fs/read_text_file": "ReadTextFileRequest",
  "fs/write_text_file": "WriteTextFileRequest",
  "terminal/create": "CreateTerminalRequest",
  "terminal/output": "TerminalOutputRequest",
  "terminal/wait_for_exit": "WaitForTerminalExitRequest",
  "terminal/kill": "KillTerminalRequest",
  "terminal/release": "ReleaseTerminalRequest",
};
const kAgentNotificationType = {
  "session/update": "SessionNotification",
  "$/cancel_request": "CancelRequestNotification",
};

function describeErrors(validate) {
  return ajv.errorsText(validate.errors, { separator: "; ", dataVar: "message" });
}

// The schema and JSON-RPC violations in one message from the agent, as text (empty = none).
// `answers`: the method of our request a response answers (undefined when we sent none).
function agentMessageViolations(message, { answers, isFsAdvertised, isTerminalAdvertised = false }) {
  const violations = [];
  const where = JSON.stringify(message).slice(0, 300);
  if (!validateAgentMessage(message)) {
    violations.push(`not an ACP agent message: ${describeErrors(validateAgentMessage)}: ${where}`);
  }
  if (message.method !== undefined) {
    const isRequest = message.id !== undefined;
    const type = (isRequest ? kAgentRequestType : kAgentNotificationType)[message.method];
    if (type) {
      const validate = validatorFor(type);
      if (!validate(message.params)) {
        violations.push(`${message.method} params are not a ${type}: ${describeErrors(validate)}: ${where}`);
      }
    } else if (!message.method.startsWith("_")) {
      violations.push(`the agent sent an unknown ${isRequest ? "request" : "notification"}: ${where}`);
    }
    if (message.method.startsWith("fs/") && !isFsAdvertised) {
      violations.push(`fs/* sent to a client that did not advertise it: ${where}`);
    }
    if (message.method.startsWith("terminal/") && !isTerminalAdvertised) {
      violations.push(`terminal/* sent to a client that did not advertise it: ${where}`);
    }
    return violations;
  }
  if (message.id !== null && answers === undefined) {
    violations.push(`a response to an id we never sent: ${where}`);
  }
  if ("error" in message) {
    const validate = validatorFor("Error");
    if (!validate(message.error)) {
      violations.push(`error object invalid: ${describeErrors(validate)}: ${where}`);
    }
  } else if (kResponseType[answers]) {
    const validate = validatorFor(kResponseType[answers]);
    if (!validate(message.result)) {
      violations.push(`${answers} result is not a ${kResponseType[answers]}: ${describeErrors(validate)}: ${where}`);
    }
  }
  return violations;
}

// ---------------------------------------------------------------------------------------------
// A fake OpenAI-compatible provider: each POST …/chat/completions takes the next scripted turn.
// A turn is a list of steps: {text}, {reasoning}, {tool: {id, name, args, fragments}},
// {hang: true} (hold the stream open until the client goes away), {finish}; usage and [DONE]
// follow unless the turn hangs.

class FakeProvider {
  constructor(turns) {
    this.turns = turns;
    this.requests = [];  // Parsed request bodies, in order.
    this.server = http.createServer((request, response) => this.#serve(request, response));
    this.waiters = new Set();
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.baseUrl = `http://127.0.0.1:${this.server.address().port}/v1`;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  // The text of every message of request `index` (0-based), for assertions on what the model saw.
  requestText(index) {
    return JSON.stringify(this.requests[index]?.messages ?? []);
  }

  #serve(request, response) {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      if (request.method !== "POST" || !request.url.endsWith("/chat/completions")) {
        response.writeHead(404, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { message: `no route ${request.method} ${request.url}` } }));
        return;
      }
      let parsed;
      try {
        parsed = JSON.parse(body);
      } catch {
        response.writeHead(400).end();
        return;
      }
      this.requests.push(parsed);
      for (const waiter of this.waiters) waiter();
      const turn = this.turns.shift();
      if (!turn) {
        response.writeHead(500, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { message: "fake provider: no scripted turn left" } }));
        return;
      }
      this.#stream(turn, response);
    });
  }

  #stream(turn, response) {
    response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const id = `chatcmpl-${this.requests.length}`;
    const chunk = (choice) =>
      response.write(
        `data: ${JSON.stringify({
          id,
          object: "chat.completion.chunk",
          created: 1767225600,
          model: "gpt-4o",
          choices: choice ? [{ index: 0, finish_reason: null, ...choice }] : [],
        })}\n\n`,
      );
    let finish = "stop";
    let toolIndex = 0;
    chunk({ delta: { role: "assistant", content: "" } });
    for (const step of turn) {
      if (step.text !== undefined) {
        chunk({ delta: { content: step.text } });
      } else if (step.reasoning !== undefined) {
        chunk({ delta: { reasoning_content: step.reasoning } });
      } else if (step.tool) {
        const args =
          typeof step.tool.args === "string" ? step.tool.args : JSON.stringify(step.tool.args);
        const pieces = Math.max(1, step.tool.fragments ?? 3);
        const size = Math.ceil(args.length / pieces);
        chunk({
          delta: {
            tool_calls: [
              {
                index: toolIndex,
                id: step.tool.id,
                type: "function",
                function: { name: step.tool.name, arguments: "" },
              },
            ],
          },
        });
        for (let at = 0; at < args.length; at += size) {
          chunk({
            delta: {
              tool_calls: [{ index: toolIndex, function: { arguments: args.slice(at, at + size) } }],
            },
          });
        }
        ++toolIndex;
        finish = "tool_calls";
      } else if (step.hang) {
        // A slow provider: nothing more until the agent gives up on the stream (or a safety
        // deadline ends it, so a broken cancel fails the test instead of hanging it).
        const deadline = setTimeout(() => response.end(), kWaitMs);
        response.on("close", () => clearTimeout(deadline));
        return;
      }
    }
    response.write(
      `data: ${JSON.stringify({
        id,
        object: "chat.completion.chunk",
        created: 1767225600,
        model: "gpt-4o",
        choices: [{ index: 0, delta: {}, finish_reason: finish }],
      })}\n\n`,
    );
    response.write(
      `data: ${JSON.stringify({
        id,
        object: "chat.completion.chunk",
        created: 1767225600,
        model: "gpt-4o",
        choices: [],
        usage: { prompt_tokens: 1200 + this.requests.length, completion_tokens: 40, total_tokens: 1240 + this.requests.length },
      })}\n\n`,
    );
    response.end("data: [DONE]\n\n");
  }
}

// Scripted turns.
const say = (text) => [{ text }];
const callTool = (id, name, args, extra = []) => [...extra, { tool: { id, name, args, fragments: 4 } }];
const complete = (id, result) => callTool(id, "attempt_completion", { result });

// ---------------------------------------------------------------------------------------------
// One `lapce-ai acp` child with an SDK client on its stdio, and a tap on every raw line.

const kEveryChild = new Set();

class AgentHarness {
  // options: provider (FakeProvider), home (temp dir shared across processes of one test),
  // workspace, onPermission(params) → optionId kind, fs ({read(params), write(params)}) to
  // register fs handlers.
  constructor(options) {
    this.options = options;
    this.incoming = [];    // Every parsed message the agent sent, in order.
    this.violations = [];  // Schema or JSON-RPC violations, as text.
    this.pendingMethods = new Map();  // Our request id → method, from the outgoing tap.
    this.updates = [];     // session/update params, as the SDK delivered them.
    this.permissions = [];  // session/request_permission params.
    this.fsRequests = [];   // {method, params}.
    this.terminalRequests = [];  // {method, params}.
    this.stderr = "";
    this.waiters = new Set();
    this.timeline = [];  // {direction: "in" | "out", message}, both ways, in order.
  }

  start() {
    const home = this.options.home;
    const env = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith("LAPCE_AI_") && !key.startsWith("XDG_")) env[key] = value;
    }
    Object.assign(env, {
      OPENAI_API_KEY: "test",
      HOME: home,
      XDG_DATA_HOME: path.join(home, "data"),
      XDG_CONFIG_HOME: path.join(home, "config"),
      XDG_STATE_HOME: path.join(home, "state"),
      XDG_CACHE_HOME: path.join(home, "cache"),
    });
    this.child = spawn(
      kBinary,
      this.options.args ?? ["acp", "--provider", "openai", "--model", "gpt-4o", "--base-url", this.options.provider.baseUrl],
      { cwd: this.options.workspace, env, stdio: ["pipe", "pipe", "pipe"] },
    );
    kEveryChild.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code, signal) => {
        kEveryChild.delete(this.child);
        resolve({ code, signal });
      }),
    );
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (text) => (this.stderr += text));
    this.child.stdin.on("error", () => {});  // EPIPE after the child exits: seen via `exited`.

    let pending = "";
    let isInputOpen = true;  // False once the SDK cancelled the stream or stdout ended.
    const input = new ReadableStream({
      start: (controller) => {
        this.child.stdout.on("data", (bytes) => {
          pending += bytes.toString("utf8");
          let newline;
          while ((newline = pending.indexOf("\n")) >= 0) {
            this.#tapIncoming(pending.slice(0, newline));
            pending = pending.slice(newline + 1);
          }
          if (isInputOpen) controller.enqueue(new Uint8Array(bytes));
        });
        this.child.stdout.on("end", () => {
          if (pending.length > 0) this.violations.push(`unterminated last line: ${pending}`);
          if (isInputOpen) controller.close();
          isInputOpen = false;
        });
      },
      cancel: () => {
        isInputOpen = false;
      },
    });
    let outgoing = "";
    const output = new WritableStream({
      write: (bytes) => {
        outgoing += Buffer.from(bytes).toString("utf8");
        let newline;
        while ((newline = outgoing.indexOf("\n")) >= 0) {
          this.#tapOutgoing(outgoing.slice(0, newline));
          outgoing = outgoing.slice(newline + 1);
        }
        return new Promise((resolve) => this.child.stdin.write(bytes, () => resolve()));
      },
      close: () => new Promise((resolve) => this.child.stdin.end(resolve)),
    });

    const app = acp.client({ name: "lapce-ai-acp-test" });
    app.onNotification("session/update", ({ params }) => {
      this.updates.push(params);
      this.#changed();
    });
    app.onRequest("session/request_permission", async ({ params }) => {
      this.permissions.push(params);
      this.#changed();
      const kind = await (this.options.onPermission ? this.options.onPermission(params) : "reject_once");
      if (kind === "cancelled") return { outcome: { outcome: "cancelled" } };
      const option = params.options.find((candidate) => candidate.kind === kind);
      assert.ok(option, `the permission request offers no '${kind}' option`);
      return { outcome: { outcome: "selected", optionId: option.optionId } };
    });
    if (this.options.fs) {
      app.onRequest("fs/read_text_file", ({ params }) => {
        this.fsRequests.push({ method: "fs/read_text_file", params });
        this.#changed();
        return Promise.resolve(this.options.fs.read(params)).then((content) => ({ content }));
      });
      app.onRequest("fs/write_text_file", ({ params }) => {
        this.fsRequests.push({ method: "fs/write_text_file", params });
        this.#changed();
        this.options.fs.write(params);
        return {};
      });
    }
    if (this.options.terminal) {
      for (const method of ["terminal/create", "terminal/output", "terminal/wait_for_exit", "terminal/kill", "terminal/release"]) {
        app.onRequest(method, ({ params }) => {
          this.terminalRequests.push({ method, params });
          this.#changed();
          return this.options.terminal(method, params);
        });
      }
    }
    this.connection = app.connect(acp.ndJsonStream(output, input));
    this.agent = this.connection.agent;
    return this;
  }

  // Sends bytes that bypass the SDK (malformed input).
  writeRaw(text) {
    this.child.stdin.write(text);
  }

  async initialize(clientCapabilities = {}, protocolVersion = acp.PROTOCOL_VERSION) {
    return this.agent.request("initialize", {
      protocolVersion,
      clientCapabilities,
      clientInfo: { name: "lapce-ai-acp-test", version: "1.0.0" },
    });
  }

  async newSession() {
    return this.agent.request("session/new", { cwd: this.options.workspace, mcpServers: [] });
  }

  // Resolves when `predicate()` is truthy; rejects after `timeoutMs` naming `what`.
  waitFor(predicate, what, timeoutMs = kWaitMs) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let value;
        try {
          value = predicate();
        } catch (error) {
          finish();
          reject(error);
          return;
        }
        if (value) {
          finish();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr:\n${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  // Resolves with the exit status, or rejects after `timeoutMs`.
  async waitForExit(timeoutMs = 5000) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`lapce-ai did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  updatesOf(kind) {
    return this.updates.filter((params) => params.update.sessionUpdate === kind).map((params) => params.update);
  }

  // Fails the test if any agent message broke the schema or JSON-RPC.
  assertClean() {
    assert.ok(this.incoming.length > 0, "the agent sent nothing");
    this.#checkNothingAfterTurns();
    assert.deepEqual(this.violations, [], `protocol violations; stderr:\n${this.stderr.slice(-2000)}`);
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    this.connection?.close();
  }

  // The spec: updates may come only before the agent answers session/prompt. Flags any update
  // for a session between that answer and the next session/prompt (or load) of the session.
  #checkNothingAfterTurns() {
    const answered = new Set();  // Sessions whose last prompt was answered.
    const promptOf = new Map();  // Our request id → session, for prompts.
    for (const entry of this.timeline) {
      if (entry.direction === "out" && entry.message.method === "session/prompt") {
        promptOf.set(JSON.stringify(entry.message.id), entry.message.params.sessionId);
        answered.delete(entry.message.params.sessionId);
      } else if (entry.direction === "out" && entry.message.method === "session/load") {
        answered.delete(entry.message.params.sessionId);
      } else if (entry.direction === "in" && entry.message.method === undefined) {
        const session = promptOf.get(JSON.stringify(entry.message.id));
        if (session !== undefined) answered.add(session);
      } else if (entry.direction === "in" && entry.message.method === "session/update") {
        if (answered.has(entry.message.params.sessionId)) {
          this.violations.push(`session/update after the prompt was answered: ${JSON.stringify(entry.message).slice(0, 300)}`);
        }
      }
    }
  }

  #changed() {
    for (const waiter of [...this.waiters]) waiter();
  }

  #tapOutgoing(line) {
    if (kTrace) process.stderr.write(`-> ${line}\n`);
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;  // Ours, deliberately malformed (writeRaw does not come through here anyway).
    }
    this.timeline.push({ direction: "out", message });
    if (message.method !== undefined && message.id !== undefined) {
      this.pendingMethods.set(JSON.stringify(message.id), message.method);
    }
  }

  #tapIncoming(line) {
    if (kTrace) process.stderr.write(`<- ${line}\n`);
    let message;
    try {
      message = JSON.parse(line);
    } catch (error) {
      this.violations.push(`stdout line is not JSON (${error.message}): ${line.slice(0, 200)}`);
      return;
    }
    this.incoming.push(message);
    this.timeline.push({ direction: "in", message });
    let method;
    if (message.method === undefined) {
      const key = JSON.stringify(message.id);
      method = this.pendingMethods.get(key);
      this.pendingMethods.delete(key);
    }
    this.violations.push(
      ...agentMessageViolations(message, {
        answers: method,
        isFsAdvertised: Boolean(this.options.fs),
        isTerminalAdvertised: Boolean(this.options.terminal),
      }),
    );
    this.#changed();
  }
}

// ---------------------------------------------------------------------------------------------
// Per-test fixtures: a temp home, a temp workspace, a provider, agents; all torn down after.

const kCleanups = [];

async function setUp(turns, files = {}) {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "lai-acp-")));
  const home = path.join(root, "home");
  const workspace = path.join(root, "workspace");
  fs.mkdirSync(home);
  fs.mkdirSync(workspace);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(workspace, name), text);
  const provider = new FakeProvider(turns);
  await provider.start();
  const agents = [];
  kCleanups.push(async () => {
    for (const agent of agents) agent.kill();
    await provider.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return {
    home,
    workspace,
    provider,
    agent(options = {}) {
      const harness = new AgentHarness({ provider, home, workspace, ...options }).start();
      agents.push(harness);
      return harness;
    },
  };
}

afterEach(async () => {
  while (kCleanups.length) await kCleanups.pop()();
});
after(() => {
  for (const child of kEveryChild) child.kill("SIGKILL");
});

async function expectRpcError(promise, code) {
  let rejected;
  await assert.rejects(promise, (error) => {
    assert.equal(error.code, code, `expected JSON-RPC error ${code}, got ${error.code}: ${error.message}`);
    rejected = error;
    return true;
  });
  return rejected;
}

// ---------------------------------------------------------------------------------------------

describe("lapce-ai acp", { timeout: 120_000 }, () => {
  test("the schema check rejects broken agent messages (so passing means something)", () => {
    const update = (sessionUpdate) => ({
      jsonrpc: "2.0",
      method: "session/update",
      params: { sessionId: "s", update: sessionUpdate },
    });
    const check = (message, answers) => agentMessageViolations(message, { answers, isFsAdvertised: false });
    // Valid ones pass.
    assert.deepEqual(check(update({ sessionUpdate: "usage_update", used: 5, size: 100 })), []);
    assert.deepEqual(check({ jsonrpc: "2.0", id: 3, result: { stopReason: "end_turn" } }, "session/prompt"), []);
    // Broken ones do not.
    assert.notDeepEqual(check(update({ sessionUpdate: "usage_update", used: -1, size: 100 })), []);
    assert.notDeepEqual(check(update({ sessionUpdate: "tool_call", toolCallId: "c" })), []);  // No title.
    assert.notDeepEqual(check(update({ sessionUpdate: "tool_call_update", toolCallId: "c", status: "done" })), []);
    assert.notDeepEqual(
      check(update({ sessionUpdate: "tool_call_update", toolCallId: "c", content: [{ type: "diff", path: "/a" }] })),
      [],
    );
    assert.notDeepEqual(check(update({ sessionUpdate: "plan", entries: [{ content: "x", status: "pending" }] })), []);
    assert.notDeepEqual(check({ jsonrpc: "2.0", id: 3, result: { stopReason: "finished" } }, "session/prompt"), []);
    assert.notDeepEqual(check({ jsonrpc: "2.0", id: 1, result: { protocolVersion: "1" } }, "initialize"), []);
    assert.notDeepEqual(check({ jsonrpc: "2.0", id: 2, result: {} }, "session/new"), []);
    assert.notDeepEqual(check({ jsonrpc: "2.0", id: 4, error: { code: "x", message: "m" } }, "foo/bar"), []);
    assert.notDeepEqual(check({ id: 5, result: {} }, "session/set_mode"), []);  // No jsonrpc.
    assert.notDeepEqual(check({ jsonrpc: "2.0", id: 9, result: {} }), []);  // Answers nothing we sent.
    assert.notDeepEqual(
      check({ jsonrpc: "2.0", id: 7, method: "session/request_permission", params: { sessionId: "s", toolCall: { toolCallId: "c" } } }),
      [],
    );
    assert.notDeepEqual(
      check({ jsonrpc: "2.0", id: 8, method: "fs/read_text_file", params: { sessionId: "s", path: "/a" } }),
      [],
    );  // Valid params, but the client did not advertise fs.
    assert.notDeepEqual(check({ jsonrpc: "2.0", method: "session/updated", params: {} }), []);
    assert.notDeepEqual(
      check({ jsonrpc: "2.0", id: 9, method: "terminal/create", params: { sessionId: "s", command: "ls" } }),
      [],
    );  // Valid params, but the client did not advertise a terminal.
  });

  test("initialize echoes protocolVersion 1", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    const reply = await agent.initialize({}, 1);
    assert.equal(reply.protocolVersion, 1);
    assert.equal(reply.agentCapabilities.loadSession, true);
    assert.deepEqual(reply.authMethods, []);
    assert.equal(reply.agentInfo.name, "lapce-ai");
    agent.assertClean();
  });

  test("initialize answers 1 to protocolVersion 65535", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    const reply = await agent.initialize({}, 65535);
    assert.equal(reply.protocolVersion, 1);
    agent.assertClean();
  });

  test("session/new answers with the modes; session/set_mode sends current_mode_update", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    await agent.initialize();
    const session = await agent.newSession();
    assert.match(session.sessionId, /\S/);
    assert.equal(session.modes.currentModeId, "code");
    const modeIds = session.modes.availableModes.map((mode) => mode.id);
    for (const mode of ["code", "architect", "ask", "debug", "orchestrator"]) {
      assert.ok(modeIds.includes(mode), `mode ${mode} missing from ${modeIds}`);
    }
    await agent.agent.request("session/set_mode", { sessionId: session.sessionId, modeId: "architect" });
    await agent.waitFor(
      () => agent.updatesOf("current_mode_update").some((update) => update.currentModeId === "architect"),
      "current_mode_update to architect",
    );
    await expectRpcError(
      agent.agent.request("session/set_mode", { sessionId: session.sessionId, modeId: "no-such-mode" }),
      -32602,
    );
    agent.assertClean();
  });

  test("session/prompt: read, write (allowed), write (rejected), plan, completion", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp(
      [
        callTool("call_todo", "update_todo_list", { todos: "[ ] Read notes.txt\n[ ] Update notes.txt\n[ ] Add extra.txt" }, [
          { reasoning: "The user wants one word changed." },
          { text: "Let me plan this." },
        ]),
        callTool("call_read", "read_file", { files: [{ path: "notes.txt" }] }),
        callTool("call_write", "write_to_file", { path: "notes.txt", content: "alpha\nBETA\n", line_count: 2 }),
        callTool("call_write2", "write_to_file", { path: "extra.txt", content: "unwanted\n", line_count: 1 }),
        complete("call_done", "Updated notes.txt."),
      ],
      { "notes.txt": "alpha\nbeta\n" },
    );
    const answers = ["allow_once", "reject_once"];
    const agent = env.agent({ onPermission: () => answers.shift() ?? "reject_once" });
    await agent.initialize();  // No fs capability: the agent must use the disk itself.
    const { sessionId } = await agent.newSession();
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Change beta to BETA in notes.txt" }],
    });
    assert.equal(reply.stopReason, "end_turn");

    // The model saw the file, then the denial.
    assert.equal(env.provider.requests.length, 5);
    assert.match(env.provider.requestText(2), /1 \| alpha/);
    assert.match(env.provider.requestText(4), /The user denied this operation/);

    // The first write happened; the rejected one did not.
    assert.equal(fs.readFileSync(path.join(env.workspace, "notes.txt"), "utf8"), "alpha\nBETA\n");
    assert.equal(fs.existsSync(path.join(env.workspace, "extra.txt")), false);

    // Two permission requests, each about its tool call, with the edit as a diff.
    assert.equal(agent.permissions.length, 2);
    assert.equal(agent.permissions[0].toolCall.toolCallId, "call_write");
    assert.equal(agent.permissions[1].toolCall.toolCallId, "call_write2");
    const kinds = agent.permissions[0].options.map((option) => option.kind);
    assert.ok(kinds.includes("allow_once") && kinds.includes("reject_once"), `options: ${kinds}`);

    // The updates on the way.
    const text = agent.updatesOf("agent_message_chunk").map((update) => update.content.text).join("");
    assert.match(text, /Let me plan this\./);
    assert.match(text, /Updated notes\.txt\./);
    const thought = agent.updatesOf("agent_thought_chunk").map((update) => update.content.text).join("");
    assert.match(thought, /one word changed/);
    const plan = agent.updatesOf("plan");
    assert.ok(plan.length >= 1, "no plan update");
    assert.deepEqual(plan.at(-1).entries.map((entry) => entry.content), ["Read notes.txt", "Update notes.txt", "Add extra.txt"]);
    const calls = agent.updatesOf("tool_call");
    const read = calls.find((call) => call.toolCallId === "call_read");
    assert.ok(read, "no tool_call for read_file");
    assert.equal(read.kind, "read");
    assert.equal(read.locations[0].path, path.join(env.workspace, "notes.txt"));
    const edit = calls.find((call) => call.toolCallId === "call_write");
    assert.equal(edit?.kind, "edit");
    const editDone = agent
      .updatesOf("tool_call_update")
      .find((update) => update.toolCallId === "call_write" && update.status === "completed");
    assert.ok(editDone, "no completed tool_call_update for the write");
    const diff = editDone.content.find((item) => item.type === "diff");
    assert.deepEqual(
      { path: diff.path, oldText: diff.oldText, newText: diff.newText },
      { path: path.join(env.workspace, "notes.txt"), oldText: "alpha\nbeta\n", newText: "alpha\nBETA\n" },
    );
    const rejected = agent
      .updatesOf("tool_call_update")
      .find((update) => update.toolCallId === "call_write2" && (update.status === "failed" || update.status === "completed"));
    assert.ok(rejected, "no final tool_call_update for the rejected write");
    const usage = agent.updatesOf("usage_update");
    assert.ok(usage.length >= 1, "no usage_update");
    assert.ok(usage.at(-1).used > 0, `usage_update.used is ${usage.at(-1).used}`);
    assert.ok(usage.at(-1).size >= 128000, `usage_update.size is ${usage.at(-1).size}`);
    agent.assertClean();
  });

  test("fs/* delegation: reads and writes of existing files go through the editor", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp(
      [
        callTool("call_read", "read_file", { files: [{ path: "main.txt" }] }),
        callTool("call_write", "write_to_file", { path: "main.txt", content: "edited in the editor\n", line_count: 1 }),
        complete("call_done", "Done."),
      ],
      { "main.txt": "on disk\n" },
    );
    const written = [];
    const agent = env.agent({
      onPermission: () => "allow_once",
      fs: {
        read: () => "unsaved buffer\n",
        write: (params) => written.push(params),
      },
    });
    await agent.initialize({ fs: { readTextFile: true, writeTextFile: true } });
    const { sessionId } = await agent.newSession();
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Edit main.txt" }],
    });
    assert.equal(reply.stopReason, "end_turn");
    const file = path.join(env.workspace, "main.txt");
    const reads = agent.fsRequests.filter((request) => request.method === "fs/read_text_file");
    assert.ok(reads.length >= 1, "no fs/read_text_file");
    for (const request of agent.fsRequests) {
      assert.equal(request.params.sessionId, sessionId);
      assert.equal(request.params.path, file);
    }
    // The model saw the editor's buffer, not the disk.
    assert.match(env.provider.requestText(1), /unsaved buffer/);
    assert.doesNotMatch(env.provider.requestText(1), /on disk/);
    assert.equal(written.length, 1);
    assert.equal(written[0].content, "edited in the editor\n");
    // The agent left the disk to the editor.
    assert.equal(fs.readFileSync(file, "utf8"), "on disk\n");
    agent.assertClean();
  });

  test("terminal/* delegation: commands run in the editor's terminal", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([
      callTool("call_run", "execute_command", { command: "echo from-the-editor", cwd: null }),
      complete("call_done", "Ran it."),
    ]);
    const agent = env.agent({
      onPermission: () => "allow_once",
      terminal: (method) => {
        switch (method) {
          case "terminal/create": return { terminalId: "term-1" };
          case "terminal/wait_for_exit": return { exitCode: 0, signal: null };
          case "terminal/output":
            return { output: "from-the-editor\n", truncated: false, exitStatus: { exitCode: 0, signal: null } };
          default: return {};
        }
      },
    });
    await agent.initialize({ terminal: true });
    const { sessionId } = await agent.newSession();
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Run echo" }],
    });
    assert.equal(reply.stopReason, "end_turn");
    const methods = agent.terminalRequests.map((request) => request.method);
    assert.equal(methods[0], "terminal/create");
    assert.ok(methods.includes("terminal/wait_for_exit"), `methods: ${methods}`);
    assert.equal(methods.at(-1), "terminal/release", `the agent must release the terminal: ${methods}`);
    for (const request of agent.terminalRequests) assert.equal(request.params.sessionId, sessionId);
    assert.equal(agent.terminalRequests[0].params.cwd, env.workspace);
    assert.match(JSON.stringify(agent.terminalRequests[0].params), /echo from-the-editor/);
    const embedded = agent
      .updatesOf("tool_call_update")
      .some((update) => update.toolCallId === "call_run" && update.content?.some((item) => item.type === "terminal" && item.terminalId === "term-1"));
    assert.ok(embedded, "the tool call does not embed the terminal");
    // The final content replaces the card's: the terminal stays in it, beside the result text.
    const final = agent
      .updatesOf("tool_call_update")
      .filter((update) => update.toolCallId === "call_run" && update.status === "completed")
      .at(-1);
    assert.deepEqual(final?.content?.[0], { type: "terminal", terminalId: "term-1" });
    assert.ok(final.content.some((item) => item.type === "content"), JSON.stringify(final));
    assert.match(env.provider.requestText(1), /from-the-editor/);
    agent.assertClean();
  });

  test("terminal/* failures after the command started are not 'could not be started'", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([
      callTool("call_run", "execute_command", { command: "make deploy", cwd: null }),
      complete("call_done", "Checked."),
    ]);
    const agent = env.agent({
      onPermission: () => "allow_once",
      terminal: (method) => {
        switch (method) {
          case "terminal/create": return { terminalId: "term-2" };
          case "terminal/wait_for_exit": throw new Error("the editor lost the terminal");
          case "terminal/output": throw new Error("no output kept");
          default: return {};
        }
      },
    });
    await agent.initialize({ terminal: true });
    const { sessionId } = await agent.newSession();
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Deploy" }],
    });
    assert.equal(reply.stopReason, "end_turn");
    // The command ran: the model must not be told it never started (it might run it again).
    const result = env.provider.requestText(1);
    assert.match(result, /The command was started, but how it ended is unknown/);
    assert.match(result, /Output:\\n\(unavailable: terminal\/output: /);
    assert.doesNotMatch(result, /could not be started/);
    assert.equal(agent.terminalRequests.at(-1).method, "terminal/release");
    agent.assertClean();
  });

  test("session/cancel while the editor's terminal never answers ends the turn promptly", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([callTool("call_run", "execute_command", { command: "sleep 600", cwd: null })]);
    let sessionId = null;
    const never = new Promise(() => {});
    const agent = env.agent({
      onPermission: () => "allow_once",
      terminal: (method) => {
        switch (method) {
          case "terminal/create":
            setTimeout(() => agent.agent.notify("session/cancel", { sessionId }), 50);
            return { terminalId: "term-3" };
          case "terminal/release": return {};
          default: return never;  // wait_for_exit, kill and output: a hung editor.
        }
      },
    });
    await agent.initialize({ terminal: true });
    ({ sessionId } = await agent.newSession());
    const started = Date.now();
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Wait ten minutes" }],
    });
    assert.equal(reply.stopReason, "cancelled");
    // Each request used to wait up to 30 s, the exit for ever; now the kill gets a few seconds.
    assert.ok(Date.now() - started < 15_000, `the cancel took ${Date.now() - started} ms`);
    const methods = agent.terminalRequests.map((request) => request.method);
    assert.ok(methods.includes("terminal/kill"), `methods: ${methods}`);
    await agent.waitFor(
      () => agent.terminalRequests.some((request) => request.method === "terminal/release"),
      "terminal/release",
    );
    agent.assertClean();
  });

  test("session/cancel while the editor never answers fs/read_text_file ends the turn promptly", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([callTool("call_read", "read_file", { files: [{ path: "main.txt" }] })], { "main.txt": "x\n" });
    let sessionId = null;
    const agent = env.agent({
      fs: {
        read: () => {
          setTimeout(() => agent.agent.notify("session/cancel", { sessionId }), 50);
          return new Promise(() => {});  // A hung editor.
        },
        write: () => {},
      },
    });
    await agent.initialize({ fs: { readTextFile: true, writeTextFile: true } });
    ({ sessionId } = await agent.newSession());
    const started = Date.now();
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Read main.txt" }],
    });
    assert.equal(reply.stopReason, "cancelled");
    // The request used to run to its 30 s timeout.
    assert.ok(Date.now() - started < 10_000, `the cancel took ${Date.now() - started} ms`);
    agent.assertClean();
  });

  test("stdin EOF during a turn cancels it: the agent exits promptly", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([[{ text: "Thinking about it" }, { hang: true }]]);
    const agent = env.agent();
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    agent.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "Go" }] }).catch(() => {});
    await agent.waitFor(
      () => agent.updatesOf("agent_message_chunk").some((update) => update.content.text.includes("Thinking")),
      "the first streamed chunk",
    );
    agent.child.stdin.end();
    // It used to wait for the provider (its first-byte timeout is two minutes).
    assert.deepEqual(await agent.waitForExit(5000), { code: 0, signal: null });
  });

  test("always reject holds for the rest of the session, not only the turn", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([
      callTool("call_a", "write_to_file", { path: "a.txt", content: "a\n", line_count: 1 }),
      complete("call_done1", "Left it."),
      callTool("call_b", "write_to_file", { path: "b.txt", content: "b\n", line_count: 1 }),
      complete("call_done2", "Left it too."),
    ]);
    const agent = env.agent({ onPermission: () => "reject_always" });
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    for (const text of ["Write a.txt", "Write b.txt"]) {
      const reply = await agent.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text }] });
      assert.equal(reply.stopReason, "end_turn");
    }
    assert.equal(agent.permissions.length, 1, "the second write was asked about again");
    assert.equal(fs.existsSync(path.join(env.workspace, "b.txt")), false);
    assert.match(env.provider.requestText(3), /The user denied this operation/);
    agent.assertClean();
  });

  test("an error answer to a permission request denies the call; it does not cancel the turn", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([
      callTool("call_a", "write_to_file", { path: "a.txt", content: "a\n", line_count: 1 }),
      complete("call_done", "Could not write."),
    ]);
    const agent = env.agent({ onPermission: () => { throw new Error("this editor cannot ask"); } });
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    const reply = await agent.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "Write a.txt" }] });
    assert.equal(reply.stopReason, "end_turn");
    assert.equal(fs.existsSync(path.join(env.workspace, "a.txt")), false);
    assert.match(env.provider.requestText(1), /The user denied this operation/);
    assert.doesNotMatch(env.provider.requestText(1), /cancelled/);
  });

  test("resource_link to a path with spaces reaches the model", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([complete("call_done", "Seen.")]);
    fs.mkdirSync(path.join(env.workspace, "sub dir"));
    fs.writeFileSync(path.join(env.workspace, "sub dir", "ü ñ.txt"), "marker-with-spaces\n");
    const agent = env.agent();
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    const uri = "file://" + path.join(env.workspace, "sub dir", "ü ñ.txt").split("/").map(encodeURIComponent).join("/");
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "see" }, { type: "resource_link", uri, name: "x" }],
    });
    assert.equal(reply.stopReason, "end_turn");
    assert.match(env.provider.requestText(0), /marker-with-spaces/);
    agent.assertClean();
  });

  test("a reply's text after another reply's text starts a new paragraph", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([[{ text: "Let me think." }], [{ text: "Still here." }], complete("call_done", "Done.")]);
    const agent = env.agent();
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    const reply = await agent.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "Go" }] });
    assert.equal(reply.stopReason, "end_turn");
    const text = agent.updatesOf("agent_message_chunk").map((update) => update.content.text).join("");
    assert.match(text, /Let me think\.\n\nStill here\./);
    assert.doesNotMatch(text, /^\n/);
    agent.assertClean();
  });

  test("session/cancel while an MCP server is still starting ends the turn promptly", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([complete("call_done", "Done.")]);
    const agent = env.agent();
    await agent.initialize();
    // A server that never answers initialize: the first prompt waits for it (up to its start-up
    // timeout, about 15 s) unless cancelled.
    const { sessionId } = await agent.agent.request("session/new", {
      cwd: env.workspace,
      mcpServers: [{ name: "hang", command: "/bin/sleep", args: ["100"], env: [] }],
    });
    const started = Date.now();
    const prompt = agent.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "Go" }] });
    setTimeout(() => agent.agent.notify("session/cancel", { sessionId }), 300);
    assert.equal((await prompt).stopReason, "cancelled");
    assert.ok(Date.now() - started < 5_000, `the cancel took ${Date.now() - started} ms`);
    agent.assertClean();
  });

  test("a terminal the editor creates after the turn was cancelled is killed and released", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([callTool("call_run", "execute_command", { command: "sleep 30", cwd: null })]);
    let sessionId = null;
    let answerCreate = null;
    const agent = env.agent({
      onPermission: () => "allow_once",
      terminal: (method) => {
        if (method === "terminal/create") {
          setTimeout(() => agent.agent.notify("session/cancel", { sessionId }), 50);
          return new Promise((resolve) => { answerCreate = () => resolve({ terminalId: "term-late" }); });
        }
        return {};
      },
    });
    await agent.initialize({ terminal: true });
    ({ sessionId } = await agent.newSession());
    const reply = await agent.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "Wait" }] });
    assert.equal(reply.stopReason, "cancelled");
    answerCreate();  // The editor started the command anyway.
    for (const method of ["terminal/kill", "terminal/release"]) {
      await agent.waitFor(
        () => agent.terminalRequests.some((request) => request.method === method && request.params.terminalId === "term-late"),
        method,
      );
    }
    agent.assertClean();
  });

  test("session/cancel while the provider is slow ends the turn with cancelled", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([[{ text: "Thinking about it" }, { hang: true }]]);
    const agent = env.agent();
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    const prompt = agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Take your time" }],
    });
    await agent.waitFor(
      () => agent.updatesOf("agent_message_chunk").some((update) => update.content.text.includes("Thinking")),
      "the first streamed chunk",
    );
    await agent.agent.notify("session/cancel", { sessionId });
    const reply = await prompt;
    assert.equal(reply.stopReason, "cancelled");
    agent.assertClean();
  });

  test("session/cancel during a permission request ends the turn with cancelled", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp(
      [callTool("call_write", "write_to_file", { path: "a.txt", content: "new\n", line_count: 1 })],
      { "a.txt": "old\n" },
    );
    let sessionId;
    // As the spec asks of a client: on cancel, answer the pending permission with `cancelled`.
    const agent = env.agent({
      onPermission: () => {
        agent.agent.notify("session/cancel", { sessionId });
        return "cancelled";
      },
    });
    await agent.initialize();
    ({ sessionId } = await agent.newSession());
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Rewrite a.txt" }],
    });
    assert.equal(reply.stopReason, "cancelled");
    assert.equal(fs.readFileSync(path.join(env.workspace, "a.txt"), "utf8"), "old\n");
    agent.assertClean();
  });

  test("session/cancel while the agent waits for a permission answer: the agent withdraws it", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp(
      [callTool("call_write", "write_to_file", { path: "a.txt", content: "new\n", line_count: 1 })],
      { "a.txt": "old\n" },
    );
    let sessionId;
    // A client that never answers: the agent must still end the turn, and whatever it sends to
    // withdraw its request must be valid ACP.
    const agent = env.agent({
      onPermission: () => {
        agent.agent.notify("session/cancel", { sessionId });
        return new Promise(() => {});
      },
    });
    await agent.initialize();
    ({ sessionId } = await agent.newSession());
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Rewrite a.txt" }],
    });
    assert.equal(reply.stopReason, "cancelled");
    assert.equal(fs.readFileSync(path.join(env.workspace, "a.txt"), "utf8"), "old\n");
    agent.assertClean();
  });

  test("session/load replays a session of an earlier process before answering", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([complete("call_done", "The answer is 42.")]);
    const first = env.agent();
    await first.initialize();
    const { sessionId } = await first.newSession();
    const reply = await first.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "What is the answer?" }],
    });
    assert.equal(reply.stopReason, "end_turn");
    first.assertClean();
    first.child.stdin.end();
    assert.deepEqual(await first.waitForExit(), { code: 0, signal: null });

    const second = env.agent();
    await second.initialize();
    const loaded = await second.agent.request("session/load", {
      sessionId,
      cwd: env.workspace,
      mcpServers: [],
    });
    assert.equal(loaded.modes.currentModeId, "code");
    // Every replayed update came before the load response on the wire.
    const responseAt = second.incoming.findIndex((message) => message.id !== undefined && message.method === undefined && "result" in message && message.result?.modes);
    const replayed = second.incoming
      .map((message, index) => ({ message, index }))
      .filter(({ message }) => message.method === "session/update" && message.params.sessionId === sessionId);
    assert.ok(replayed.length >= 2, `only ${replayed.length} updates replayed`);
    assert.ok(replayed.every(({ index }) => index < responseAt), "an update came after the session/load response");
    const kinds = replayed.map(({ message }) => message.params.update.sessionUpdate);
    const texts = replayed.map(({ message }) => message.params.update.content?.text ?? "");
    const userAt = kinds.indexOf("user_message_chunk");
    assert.ok(userAt >= 0 && texts[userAt].includes("What is the answer?"), `kinds: ${kinds}`);
    assert.ok(texts.some((text) => text.includes("The answer is 42.")), "the completion was not replayed");
    await expectRpcError(
      second.agent.request("session/load", { sessionId: "no-such-session", cwd: env.workspace, mcpServers: [] }),
      -32002,
    );
    second.assertClean();
  });

  test("session/load of a session whose mode is no longer defined lists that mode as current", { timeout: kTestTimeoutMs }, async () => {
    const modes = "customModes:\n  - slug: docs\n    name: Docs\n    roleDefinition: You write docs.\n    groups: [read]\n";
    const env = await setUp([complete("call_done", "Documented.")], { ".kilocodemodes": modes });
    const first = env.agent();
    await first.initialize();
    const { sessionId } = await first.newSession();
    await first.agent.request("session/set_mode", { sessionId, modeId: "docs" });
    const reply = await first.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "Document it" }] });
    assert.equal(reply.stopReason, "end_turn");
    first.child.stdin.end();
    assert.deepEqual(await first.waitForExit(), { code: 0, signal: null });

    fs.rmSync(path.join(env.workspace, ".kilocodemodes"));
    const second = env.agent();
    await second.initialize();
    const loaded = await second.agent.request("session/load", { sessionId, cwd: env.workspace, mcpServers: [] });
    assert.equal(loaded.modes.currentModeId, "docs");
    const ids = loaded.modes.availableModes.map((mode) => mode.id);
    assert.ok(ids.includes("docs") && ids.includes("code"), `modes: ${ids}`);
    assert.match(loaded.modes.availableModes.find((mode) => mode.id === "docs").name, /not defined/);
    second.assertClean();
  });

  test("session/load never sends a session to another provider than its own unless the agent names one", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([complete("call_done", "First."), complete("call_done2", "Second.")]);
    const first = env.agent();
    await first.initialize();
    const { sessionId } = await first.newSession();
    await first.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "one" }] });
    first.child.stdin.end();
    await first.waitForExit();

    // A configured profile only: the session's one-off provider is not there, and the load is
    // refused (it went to the configured default).
    fs.mkdirSync(path.join(env.home, "config", "lapce-ai"), { recursive: true });
    fs.writeFileSync(path.join(env.home, "config", "lapce-ai", "config.toml"),
      `[profiles.cfg]\nprovider = "openai"\nmodel = "gpt-4o-mini"\nbase_url = "${env.provider.baseUrl}"\n`);
    const bare = env.agent({ args: ["acp"] });
    await bare.initialize();
    const refused = await expectRpcError(
      bare.agent.request("session/load", { sessionId, cwd: env.workspace, mcpServers: [] }), -32602);
    assert.match(refused.message, /one-off --provider/);
    bare.child.stdin.end();
    await bare.waitForExit();
    assert.equal(env.provider.requests.length, 1);

    // The agent started naming a profile: the session goes on there.
    const named = env.agent({ args: ["acp", "--profile", "cfg"] });
    await named.initialize();
    await named.agent.request("session/load", { sessionId, cwd: env.workspace, mcpServers: [] });
    const reply = await named.agent.request("session/prompt", { sessionId, prompt: [{ type: "text", text: "two" }] });
    assert.equal(reply.stopReason, "end_turn");
    assert.equal(env.provider.requests.length, 2);
    assert.equal(env.provider.requests[1].model, "gpt-4o-mini");
  });

  test("session/prompt takes resource_link blocks (the file reaches the model)", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([complete("call_done", "Seen.")], { "spec.md": "# The spec\nsecret-marker-7\n" });
    const agent = env.agent();
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    const file = path.join(env.workspace, "spec.md");
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [
        { type: "text", text: "Summarise " },
        { type: "resource_link", uri: `file://${file}`, name: "spec.md" },
      ],
    });
    assert.equal(reply.stopReason, "end_turn");
    assert.match(env.provider.requestText(0), /secret-marker-7/);
    agent.assertClean();
  });

  test("an embedded resource of a .kilocodeignore'd file is left out, as an @mention of it is", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([complete("call_done", "Seen.")], {
      ".kilocodeignore": "secret.env\n",
      "secret.env": "KEY=on-disk\n",
      "notes.md": "plain\n",
    });
    const agent = env.agent();
    await agent.initialize();
    const { sessionId } = await agent.newSession();
    const uri = (name) => `file://${path.join(env.workspace, name)}`;
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [
        { type: "text", text: "Look at these" },
        { type: "resource", resource: { uri: uri("secret.env"), text: "KEY=from-the-editor" } },
        // A selection (Zed's #L fragment), a localhost host, a doubled slash: the same file.
        { type: "resource", resource: { uri: `${uri("secret.env")}#L1:2`, text: "KEY=from-the-editor" } },
        { type: "resource", resource: { uri: `file://localhost${path.join(env.workspace, "secret.env")}`, text: "KEY=from-the-editor" } },
        { type: "resource", resource: { uri: `file://${env.workspace}//secret.env`, text: "KEY=from-the-editor" } },
        { type: "resource", resource: { uri: uri("notes.md"), text: "unsaved-notes-marker" } },
      ],
    });
    assert.equal(reply.stopReason, "end_turn");
    const sent = env.provider.requestText(0);
    assert.doesNotMatch(sent, /from-the-editor/);
    assert.match(sent, /'secret.env' is blocked by the .kilocodeignore file settings/);
    assert.match(sent, /unsaved-notes-marker/);
    agent.assertClean();
  });

  test("session/new mcpServers: the model calls the server's tool after the user allows it", {
    timeout: kTestTimeoutMs,
    skip: process.env.FAKE_MCP_BIN ? false : "FAKE_MCP_BIN is not set",
  }, async () => {
    const env = await setUp([
      callTool("call_mcp", "use_mcp_tool", { server_name: "fake", tool_name: "echo", arguments: { text: "ping" } }),
      callTool("call_res", "access_mcp_resource", { server_name: "fake", uri: "memo://greeting" }),
      complete("call_done", "Echoed."),
    ]);
    const agent = env.agent({ onPermission: () => "allow_once" });
    await agent.initialize();
    await expectRpcError(
      agent.agent.request("session/new", { cwd: env.workspace, mcpServers: [{ type: "http", name: "web", url: "http://127.0.0.1:9/mcp", headers: [] }] }),
      -32602,
    );
    const { sessionId } = await agent.agent.request("session/new", {
      cwd: env.workspace,
      mcpServers: [{ name: "fake", command: process.env.FAKE_MCP_BIN, args: [], env: [] }],
    });
    const reply = await agent.agent.request("session/prompt", {
      sessionId,
      prompt: [{ type: "text", text: "Echo ping, then read the greeting" }],
    });
    assert.equal(reply.stopReason, "end_turn");
    assert.match(env.provider.requestText(0), /MCP SERVERS/);
    assert.match(env.provider.requestText(1), /echo: ping/);
    assert.match(env.provider.requestText(2), /hello from the fake server/);
    assert.equal(agent.permissions.length, 2);
    agent.assertClean();
  });

  test("requests naming an unknown session get -32002; authenticate answers", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    await agent.initialize();
    await expectRpcError(
      agent.agent.request("session/prompt", { sessionId: "nope", prompt: [{ type: "text", text: "hi" }] }),
      -32002,
    );
    await expectRpcError(agent.agent.request("session/set_mode", { sessionId: "nope", modeId: "ask" }), -32002);
    await expectRpcError(agent.agent.request("session/new", { cwd: "relative/dir", mcpServers: [] }), -32602);
    await agent.agent.request("authenticate", { methodId: "none" });
    agent.assertClean();
  });

  test("_lapce/sessions/list lists the sessions", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    await agent.initialize();
    const a = await agent.newSession();
    const b = await agent.newSession();
    const listed = await agent.agent.request("_lapce/sessions/list", {});
    const ids = listed.sessions.map((session) => session.sessionId);
    assert.ok(ids.includes(a.sessionId) && ids.includes(b.sessionId), `listed: ${ids}`);
    for (const session of listed.sessions) assert.equal(session.cwd, env.workspace);
    // A bad field is the caller's error, named (it was an internal error quoting a C++ exception).
    await expectRpcError(agent.agent.request("_lapce/sessions/list", { limit: "x" }), -32602);
    const one = await agent.agent.request("_lapce/sessions/list", { limit: 1 });
    assert.equal(one.sessions.length, 1);
    agent.assertClean();
  });

  test("unknown methods get -32601, extension ones too", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    await agent.initialize();
    await expectRpcError(agent.agent.request("foo/bar", {}), -32601);
    await expectRpcError(agent.agent.request("_lapce/unknown", {}), -32601);
    // session/cancel is a notification; sent as a request, it is answered, not refused.
    const { sessionId } = await agent.newSession();
    assert.equal(await agent.agent.request("session/cancel", { sessionId }), null);
    // An unknown notification is ignored, and the agent keeps serving.
    await agent.agent.notify("_lapce/whatever", {});
    await agent.newSession();
    agent.assertClean();
  });

  test("a malformed JSON line gets -32700 and the agent keeps serving", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    await agent.initialize();
    agent.writeRaw('{"jsonrpc":"2.0","id":99,"method":\n');
    const parseError = await agent.waitFor(
      () => agent.incoming.find((message) => message.error?.code === -32700),
      "the -32700 response",
    );
    assert.equal(parseError.id, null);
    const session = await agent.newSession();
    assert.match(session.sessionId, /\S/);
    agent.assertClean();
  });

  test("stdin EOF: the agent exits promptly with code 0", { timeout: kTestTimeoutMs }, async () => {
    const env = await setUp([]);
    const agent = env.agent();
    await agent.initialize();
    await agent.newSession();
    agent.child.stdin.end();
    assert.deepEqual(await agent.waitForExit(3000), { code: 0, signal: null });
    agent.assertClean();
  });
});
