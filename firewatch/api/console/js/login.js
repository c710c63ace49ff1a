// The login page: username and password to POST /auth/login; the server answers with the
// session cookies (fw_session, HttpOnly; fw_csrf for the X-CSRF-Token header).
import { h, replace } from "./dom.js";
import { t } from "./i18n.js";
import { api, PATHS } from "./api.js";
import { errorText } from "./ui.js";

export function renderLogin(root, { onLoggedIn, notice }) {
  const error = h("p", { class: "error", role: "alert", hidden: !notice }, notice || "");
  const username = h("input", {
    id: "username",
    name: "username",
    autocomplete: "username",
    required: true,
    autofocus: true,
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", class: "primary big" }, t("login.submit"));
  const form = h(
    "form",
    {
      class: "login",
      onsubmit: async (e) => {
        e.preventDefault();
        submit.disabled = true;
        error.hidden = true;
        try {
          const me = await api(PATHS.login, {
            method: "POST",
            body: { username: username.value.trim(), password: password.value },
          });
          password.value = "";
          onLoggedIn(me);
        } catch (err) {
          error.textContent =
            err.status === 401
              ? t("login.wrong")
              : err.status === 429
                ? t("login.throttled", { detail: err.detail })
                : errorText(err);
          error.hidden = false;
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", null, t("login.title")),
    h("label", { for: "username" }, t("login.username")),
    username,
    h("label", { for: "password" }, t("login.password")),
    password,
    submit,
    error,
  );
  replace(root, h("div", { class: "login-page" }, form));
  username.focus();
}
