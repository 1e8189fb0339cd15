/** The part of async-exit-hook (no types of its own) that `npm run dev` uses. */
declare module 'async-exit-hook' {
  interface ExitHook {
    (hook: (done?: () => void) => void): void;
    /** Removes the hook's own listener for a process event or signal. */
    unhookEvent(event: string): void;
  }
  const exitHook: ExitHook;
  export default exitHook;
}
