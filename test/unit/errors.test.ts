import { describe, expect, it } from "vitest";
import { SecretNotFound } from "../../functions/adapters/secrets/secret-readers.js";
import { ConfigError } from "../../functions/config/load.js";
import { callerError, InternalError, NotFound, TmeError } from "../../functions/core/errors.js";
import { PermanentTaskError } from "../../functions/core/plugins/plugin.js";

describe("one error base", () => {
  it("every TME error is a TmeError; an internal one keeps its own name and message", () => {
    const error = new ConfigError("app_config.yaml: LOG_LEVL is not a key");
    expect(error).toBeInstanceOf(TmeError);
    expect(error).toBeInstanceOf(InternalError);
    expect({
      name: error.name,
      message: error.message,
      status: error.status,
      exposed: error.exposed,
    }).toEqual({
      name: "ConfigError",
      message: "app_config.yaml: LOG_LEVL is not a key",
      status: 500,
      exposed: false,
    });
    expect(new PermanentTaskError("bad input").name).toBe("PermanentTaskError");
  });

  it("a caller sees an exposed error as it is, an internal one or a foreign error as internal_error", () => {
    const notFound = new NotFound("task", "tsk_1");
    expect(callerError(notFound, "req-1")).toBe(notFound);
    for (const hidden of [new SecretNotFound("secret db_password is not set"), new Error("boom"), "text"]) {
      const answer = callerError(hidden, "req-1");
      expect({ status: answer.status, code: answer.code, message: answer.message }).toEqual({
        status: 500,
        code: "internal_error",
        message: "internal error (request id req-1)",
      });
    }
  });
});
