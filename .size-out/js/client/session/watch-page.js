/** Pauses refreshing while the page is hidden; resumes when it is shown or the network is back. */
export function watchPage(setHidden) {
    const update = () => setHidden(document.visibilityState === 'hidden');
    document.addEventListener('visibilitychange', update);
    addEventListener('online', update);
    update();
}
