import { useState } from "react";
import { login } from "./api";
import type { Session } from "./types";

export function Login(props: { onLogin: (session: Session) => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setError("");
    try {
      props.onLogin(await login(username, password));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form className="login" onSubmit={submit}>
      <h1>Vigil</h1>
      <input data-testid="login-username" placeholder="user" value={username} onChange={(e) => setUsername(e.target.value)} autoFocus />
      <input data-testid="login-password" placeholder="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} />
      <button data-testid="login-submit" type="submit">Log in</button>
      {error && <p className="error" data-testid="login-error">{error}</p>}
    </form>
  );
}
