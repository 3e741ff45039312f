// What a link to something the console does not know shows: what was asked
// for, why it may be missing, and where to go instead.
import { Link } from "react-router";

export function NotFound(props: { what: string; detail?: string; back?: { to: string; label: string } }) {
  const back = props.back ?? { to: "/findings", label: "the findings" };
  return (
    <section className="not-found" data-testid="not-found">
      <h2>Not found: {props.what}</h2>
      {props.detail && <p className="muted">{props.detail}</p>}
      <p>
        Back to <Link to={back.to}>{back.label}</Link>.
      </p>
    </section>
  );
}
