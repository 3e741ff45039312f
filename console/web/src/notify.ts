// Browser notifications for critical findings that arrive live. Permission
// is asked only when the user clicks (browsers ignore or penalise asking
// on load); the page notifies only while it is open.
import { useCallback, useRef, useState } from "react";
import type { Finding } from "./types";
import { SEVERITY } from "./types";

export type Permission = NotificationPermission | "unsupported";

const supported = () => typeof window !== "undefined" && "Notification" in window;

export function useCriticalNotifications(open: (finding: Finding) => void) {
  const [permission, setPermission] = useState<Permission>(supported() ? Notification.permission : "unsupported");
  const notified = useRef(new Set<string>());

  const ask = useCallback(async () => {
    if (!supported()) return;
    setPermission(await Notification.requestPermission());
  }, []);

  /** Called for each finding from the live stream (not the snapshot). */
  const onLive = useCallback(
    (finding: Finding) => {
      if (finding.severity < SEVERITY.critical || notified.current.has(finding.id)) return;
      if (!supported() || Notification.permission !== "granted") return;
      notified.current.add(finding.id);
      const where = `${finding.namespace || "-"}/${finding.pod || finding.node}`;
      const notification = new Notification(`Vigil ${finding.priority}: ${finding.rule}`, {
        body: `${where}\n${finding.output}`,
        tag: finding.id,
      });
      notification.onclick = () => {
        window.focus();
        open(finding);
      };
    },
    [open],
  );

  return { permission, ask, onLive };
}
