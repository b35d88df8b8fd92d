let muted = false;

/**
 * kafkajs 2.2.4's request queue can arm a timer with a negative delay once a broker's throttle
 * has already passed (kafkajs#1751, unfixed upstream). Node ≥ 24 prints a
 * TimeoutNegativeWarning for it on nearly every start, though the timer then fires at once,
 * which is what kafkajs means. Drop exactly that warning, in this thread; every other warning
 * still reaches Node's own printer.
 */
export function muteKafkajsNegativeTimeoutWarning(): void {
  if (muted) return;
  muted = true;
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning') return;
    for (const print of printers) print(warning);
  });
}
